package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/meshcast/meshcast/hub"
)

// configFile is a parsed --config file. Its keys are the flags' names
// (max-message: 65536), plus namespaces, a map of namespace rules. A JSON
// file of namespaces ({"namespaces":{...}}, the format --config had
// before) is YAML too, so it still works.
type configFile struct {
	path       string
	values     []fileValue              // flag settings, in file order
	namespaces map[string]hub.Namespace // the namespaces key
	lines      map[string]int           // key (or "namespaces.NAME") -> line
}

// fileValue is one flag set by the file.
type fileValue struct {
	key, value string
	line       int
}

// lineError is an error at a line of a config file.
type lineError struct {
	path string
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.path, e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// loadConfigFile reads path, checking every key against fs. It returns
// every error found, each with its line.
func loadConfigFile(path string, fs *flag.FlagSet) (*configFile, []error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{fmt.Errorf("--config: %w", err)}
	}
	cf := &configFile{path: path, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, []error{fmt.Errorf("%s: %w", path, err)}
	}
	if len(doc.Content) == 0 {
		return cf, nil // an empty file sets nothing
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, []error{cf.at(root, errors.New("the file must be a map of settings (max-message: 65536)"))}
	}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		errs = append(errs, cf.entry(root.Content[i], root.Content[i+1], fs)...)
	}
	return cf, errs
}

func (cf *configFile) at(n *yaml.Node, err error) error {
	return &lineError{path: cf.path, line: n.Line, err: err}
}

// entry reads one top-level key.
func (cf *configFile) entry(k, v *yaml.Node, fs *flag.FlagSet) []error {
	key := k.Value
	if _, dup := cf.lines[key]; dup {
		return []error{cf.at(k, fmt.Errorf("%s: set twice (first on line %d)", key, cf.lines[key]))}
	}
	cf.lines[key] = k.Line
	switch {
	case key == "namespaces":
		return cf.namespaceMap(v)
	case key == "config":
		return []error{cf.at(k, errors.New("config: a config file cannot name another one"))}
	case fs.Lookup(key) == nil:
		return []error{cf.at(k, fmt.Errorf("unknown setting %q (the settings are the flags' names, see meshcast --help)", key))}
	}
	val, err := scalarOrList(v, key)
	if err != nil {
		return []error{cf.at(v, fmt.Errorf("%s: %w", key, err))}
	}
	// Set it on a scratch flag set now, so a bad value is reported even
	// when a flag or the environment overrides it.
	var scratch config
	if err := scratch.flagSet(io.Discard).Set(key, val); err != nil {
		return []error{cf.at(v, fmt.Errorf("%s: invalid value %q: %w", key, val, err))}
	}
	if pathSettings[key] && val != "" && !filepath.IsAbs(val) {
		val = filepath.Join(filepath.Dir(cf.path), val)
	}
	cf.values = append(cf.values, fileValue{key: key, value: val, line: v.Line})
	return nil
}

// pathSettings name files. A relative path in the config file is relative
// to the file's folder, so that the file and what it names can move
// together and a service's working directory does not matter; on the
// command line and in the environment it is relative to the working
// directory, as for any command.
var pathSettings = map[string]bool{
	"secret-file": true, "api-key-file": true, "token-rsa-public-key": true, "token-jwks-file": true,
	"tls-cert": true, "tls-key": true, "peer-tls-cert": true, "peer-tls-key": true, "peer-tls-ca": true,
}

// scalarOrList is a value as its flag takes it: a scalar as written, a
// list joined with "," (";" for namespace, whose rules contain commas).
func scalarOrList(v *yaml.Node, key string) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", nil
		}
		return v.Value, nil
	case yaml.SequenceNode:
		sep := ","
		if key == "namespace" {
			sep = ";"
		}
		var parts []string
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return "", errors.New("want a list of plain values")
			}
			parts = append(parts, item.Value)
		}
		return strings.Join(parts, sep), nil
	}
	return "", errors.New("want a value or a list, not a map")
}

// namespaceMap reads namespaces: {NAME: {subscribe, publish, origins,
// history, history_ttl}}.
func (cf *configFile) namespaceMap(v *yaml.Node) []error {
	if v.Kind != yaml.MappingNode {
		return []error{cf.at(v, errors.New("namespaces: want a map of namespace names to rules"))}
	}
	cf.namespaces = map[string]hub.Namespace{}
	var errs []error
	for i := 0; i+1 < len(v.Content); i += 2 {
		name, rules := v.Content[i].Value, v.Content[i+1]
		cf.lines["namespaces."+name] = v.Content[i].Line
		ns, err := cf.namespace(name, rules)
		if err != nil {
			errs = append(errs, err...)
			continue
		}
		cf.namespaces[name] = ns
	}
	return errs
}

func (cf *configFile) namespace(name string, v *yaml.Node) (hub.Namespace, []error) {
	var ns hub.Namespace
	if strings.Contains(name, ":") {
		return ns, []error{cf.at(v, fmt.Errorf("namespace %q has a ':'", name))}
	}
	if v.Kind != yaml.MappingNode {
		return ns, []error{cf.at(v, fmt.Errorf("namespace %q: want subscribe, publish and origins", name))}
	}
	var errs []error
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		var err error
		switch k.Value {
		case "subscribe":
			err = ns.Subscribe.UnmarshalText([]byte(val.Value))
		case "publish":
			err = ns.Publish.UnmarshalText([]byte(val.Value))
		case "origins":
			err = val.Decode(&ns.Origins)
		case "history":
			err = val.Decode(&ns.History)
		case "history_ttl":
			err = ns.HistoryTTL.UnmarshalText([]byte(val.Value))
		default:
			err = presenceOption(&ns, k.Value, val.Value) // presence.go
		}
		if err != nil {
			errs = append(errs, cf.at(k, fmt.Errorf("namespace %q: %w", name, err)))
		}
	}
	if err := checkNamespace(name, ns); err != nil && len(errs) == 0 {
		errs = append(errs, cf.at(v, err))
	}
	return ns, errs
}

// locate puts err at the line of the first setting it names that the
// file sets; other errors come back as they are, with the file's name.
// locateAll is locate for each error of an errors.Join, nested ones
// included.
func (cf *configFile) locateAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, cf.locateAll(e)...)
		}
		return out
	}
	return []error{cf.locate(err)}
}

func (cf *configFile) locate(err error) error {
	flagMention := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	for _, m := range flagMention.FindAllStringSubmatch(err.Error(), -1) {
		if line, ok := cf.lines[m[1]]; ok {
			return &lineError{path: cf.path, line: line, err: err}
		}
	}
	return fmt.Errorf("%s: %w", cf.path, err)
}
