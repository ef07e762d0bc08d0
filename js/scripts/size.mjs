// Measures meshcast.js minified (terser) and gzipped, the way a bundler
// would ship it, and fails over the budget of issue 12: 5 KB.
import { readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { minify } from "terser";

const budget = 5 * 1024;
const src = await readFile(new URL("../meshcast.js", import.meta.url), "utf8");
const min = await minify(src, { module: true, compress: { passes: 2 }, mangle: true });
const gz = gzipSync(min.code, { level: 9 }).length;
console.log(`meshcast.js: ${src.length} B source, ${min.code.length} B minified, ${gz} B min+gzip (budget ${budget} B)`);
if (gz > budget) {
  console.error(`over budget by ${gz - budget} B`);
  process.exit(1);
}
