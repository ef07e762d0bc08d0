// One node of the comparison peer: the design meshcast replaces. Socket.IO
// v4 with the Redis adapter, so every node publishes every broadcast to
// Redis and every node receives it from Redis.
//
// Events (the seed's design):
//   "join" room [ack]    socket.join(room); the optional ack callback is
//                        answered once the room is joined, so the bench
//                        knows the subscriber is ready instead of waiting a
//                        fixed time (a plain join has no acknowledgement).
//   "msg" {room, data}   io.to(room).emit("msg", {room, data})
//
// Environment: PORT (default 3001), REDIS_URL (default redis://127.0.0.1:6390).
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.env.PORT || 3001);
const redisURL = process.env.REDIS_URL || "redis://127.0.0.1:6390";

async function main() {
  const pubClient = createClient({ url: redisURL });
  const subClient = pubClient.duplicate();
  pubClient.on("error", (err) => console.error(`node ${port}: redis: ${err.message}`));
  subClient.on("error", (err) => console.error(`node ${port}: redis: ${err.message}`));
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const httpServer = http.createServer((req, res) => {
    if (req.url === "/health") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ pid: process.pid, port }));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const io = new Server(httpServer, { adapter: createAdapter(pubClient, subClient) });

  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack();
    });
    socket.on("msg", (m) => {
      if (m && typeof m.room === "string") io.to(m.room).emit("msg", { room: m.room, data: m.data });
    });
  });

  httpServer.listen(port, "127.0.0.1", () => console.log(`node ${port} pid ${process.pid} listening`));

  const stop = () => {
    io.close();
    Promise.allSettled([pubClient.quit(), subClient.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(`node ${port}: ${err.stack || err}`);
  process.exit(1);
});
