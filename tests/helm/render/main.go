// Command render renders a Helm chart offline, the way `helm template` does,
// for the tests of helm/remex (no helm binary and no cluster on our machines).
//
// It implements the part of Helm that the remex chart uses, and nothing more:
//
//   - .Values: the chart's values.yaml, deep-merged with each -f file in order
//     (maps merge key by key, anything else replaces, null deletes a key).
//     Numbers are float64 as in Helm (values go through JSON there too).
//   - .Release (Name, Namespace, Service, IsInstall, IsUpgrade, Revision),
//     .Chart (the fields of Chart.yaml, Helm's names: .Chart.AppVersion ...),
//     .Template (Name, BasePath), .Capabilities (KubeVersion, and
//     APIVersions.Has, which answers true only for the --api-versions given),
//     .Files.Get (with -files-fallback DIR for files the chart does not hold).
//   - Functions: Go text/template's, sprig's (minus env and expandenv, as in
//     Helm), and Helm's include, tpl, required, toYaml, fromYaml, toJson,
//     fromJson. lookup fails: there is no cluster.
//
// Subcharts: each directory under charts/ holding a Chart.yaml (what `helm
// dependency build` unpacks; no .tgz, alias or condition), recursively. As
// in Helm, a subchart's values are its values.yaml, then the parent's
// values under the subchart's name, with the parent's global merged over
// the subchart's global (the parent wins); the parent's .Values.NAME then
// holds them. All charts' templates share one set of named templates; each
// template runs with its own chart's .Values, .Chart and .Files, and is
// named PARENT/charts/NAME/templates/FILE. NOTES.txt is the parent's only.
//
// Templates named _* are partials; NOTES.txt is rendered only with -notes.
// The output is what `helm template` prints: documents separated by ---, each
// with a "# Source: CHART/templates/FILE" line. -values-json FILE writes the
// merged values, so a test can validate them against values.schema.json as
// Helm does before it renders; each subchart's values go to FILE with
// .json replaced by .NAME.json (e.g. values.remex.json), for its schema.
//
// Build (Debian 12 packages golang-go, golang-github-masterminds-sprig-dev,
// golang-gopkg-yaml.v2-dev; no network):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o render ./tests/helm/render
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yamlv2 "gopkg.in/yaml.v2"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// chartMetadata mirrors the fields of Helm's chart.Metadata that a template
// may read; Chart.yaml keys are camelCase, template fields PascalCase.
type chartMetadata struct {
	APIVersion  string            `json:"apiVersion"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	AppVersion  string            `json:"appVersion"`
	KubeVersion string            `json:"kubeVersion"`
	Description string            `json:"description"`
	Type        string            `json:"type"`
	Home        string            `json:"home"`
	Sources     []string          `json:"sources"`
	Keywords    []string          `json:"keywords"`
	Annotations map[string]string `json:"annotations"`
}

// release is .Release; a struct, as in Helm, so that a misspelt field fails.
type release struct {
	Name, Namespace, Service string
	IsInstall, IsUpgrade     bool
	Revision                 int
}

// kubeVersion is .Capabilities.KubeVersion.
type kubeVersion struct {
	Version, GitVersion, Major, Minor string
}

// capabilities is .Capabilities.
type capabilities struct {
	KubeVersion kubeVersion
	APIVersions apiVersions
}

// templateInfo is .Template.
type templateInfo struct {
	Name, BasePath string
}

// files is .Files: paths relative to the chart directory.
type files struct {
	chartDir string
	fallback string
}

// Get returns the file's content, or "" when it does not exist (as Helm).
func (f files) Get(name string) string {
	for _, dir := range []string{f.chartDir, f.fallback} {
		if dir == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err == nil {
			return string(data)
		}
	}
	return ""
}

// apiVersions is .Capabilities.APIVersions.
type apiVersions []string

// Has reports whether the group/version (or group/version/Kind) is known.
func (a apiVersions) Has(v string) bool {
	for _, known := range a {
		if known == v {
			return true
		}
	}
	return false
}

// jsonable turns go-yaml v2's map[interface{}]interface{} into
// map[string]interface{}, recursively, so that encoding/json takes it.
func jsonable(v interface{}) interface{} {
	switch v := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(v))
		for key, value := range v {
			m[fmt.Sprint(key)] = jsonable(value)
		}
		return m
	case []interface{}:
		for i := range v {
			v[i] = jsonable(v[i])
		}
	}
	return v
}

// readYAML parses YAML into JSON-like values (map[string]interface{},
// []interface{}, float64, string, bool, nil), as Helm's sigs.k8s.io/yaml does:
// YAML 1.1 as go-yaml v2 reads it (yes/no/on/off are booleans), then JSON.
func readYAML(data []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yamlv2.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	encoded, err := json.Marshal(jsonable(raw))
	if err != nil {
		return nil, err
	}
	var out map[string]interface{}
	if err := json.Unmarshal(encoded, &out); err != nil {
		return nil, fmt.Errorf("not a mapping at the top: %v", err)
	}
	return out, nil
}

// merge deep-merges src into dst as Helm coalesces -f files over values.yaml.
func merge(dst, src map[string]interface{}) {
	for key, value := range src {
		if value == nil {
			delete(dst, key)
			continue
		}
		srcMap, srcIsMap := value.(map[string]interface{})
		dstMap, dstIsMap := dst[key].(map[string]interface{})
		if srcIsMap && dstIsMap {
			merge(dstMap, srcMap)
		} else {
			dst[key] = value
		}
	}
}

// toYAML is Helm's toYaml: JSON first (sorted keys, JSON names), then YAML
// with go-yaml v2 (sequences not indented), without the final newline.
func toYAML(v interface{}) string {
	encoded, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yamlv2.Unmarshal(encoded, &obj); err != nil {
		return ""
	}
	out, err := yamlv2.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

// fromYAML is Helm's fromYaml: a map, or {"Error": message}.
func fromYAML(s string) map[string]interface{} {
	m, err := readYAML([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func toJSON(v interface{}) string {
	out, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(out)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func required(message string, v interface{}) (interface{}, error) {
	if v == nil {
		return nil, errors.New(message)
	}
	if s, ok := v.(string); ok && s == "" {
		return nil, errors.New(message)
	}
	return v, nil
}

// renderer holds the parsed templates of one chart.
type renderer struct {
	root *template.Template
}

func (r *renderer) include(name string, data interface{}) (string, error) {
	var buf bytes.Buffer
	if err := r.root.ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// tpl renders a string as a template with the chart's helpers available.
func (r *renderer) tpl(text string, data interface{}) (string, error) {
	clone, err := r.root.Clone()
	if err != nil {
		return "", err
	}
	t, err := clone.New("tpl").Parse(text)
	if err != nil {
		return "", fmt.Errorf("tpl: %v", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("tpl: %v", err)
	}
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}

func (r *renderer) funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["include"] = r.include
	f["tpl"] = r.tpl
	f["required"] = required
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["toJson"] = toJSON
	f["fromJson"] = fromJSON
	f["lookup"] = func(...interface{}) (map[string]interface{}, error) {
		return nil, errors.New("lookup is not supported offline")
	}
	return f
}

// templateFiles lists the chart's templates/ files by their Helm name
// (CHART/templates/...), sorted.
func templateFiles(chartDir, chartName string) (map[string]string, []string, error) {
	contents := map[string]string{}
	var names []string
	base := filepath.Join(chartDir, "templates")
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(chartDir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		name := chartName + "/" + filepath.ToSlash(rel)
		contents[name] = string(data)
		names = append(names, name)
		return nil
	})
	sort.Strings(names)
	return contents, names, err
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// hasContent reports whether a document holds more than blanks and comments.
func hasContent(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// loadedChart is one chart of the render: the top one or a subchart.
type loadedChart struct {
	dir, name string
	meta      chartMetadata
	values    map[string]interface{}
	parent    *loadedChart
}

// prefix is "PARENT/charts/" for a subchart ("" for the top chart), as in
// Helm's template names.
func (c *loadedChart) prefix() string {
	if c.parent == nil {
		return ""
	}
	return c.parent.prefix() + c.parent.name + "/charts/"
}

// deepCopy copies JSON-like values, so that merging into a copy leaves the
// original as it was.
func deepCopy(v interface{}) interface{} {
	switch v := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(v))
		for key, value := range v {
			m[key] = deepCopy(value)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(v))
		for i := range v {
			l[i] = deepCopy(v[i])
		}
		return l
	}
	return v
}

// loadSubcharts appends the subcharts under parent's charts/ directory (and
// theirs) to charts, with their values coalesced as Helm does.
func loadSubcharts(parent *loadedChart, charts *[]*loadedChart) error {
	entries, err := os.ReadDir(filepath.Join(parent.dir, "charts"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, entry := range entries {
		dir := filepath.Join(parent.dir, "charts", entry.Name())
		chartData, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
		if !entry.IsDir() || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		chartMap, err := readYAML(chartData)
		if err != nil {
			return fmt.Errorf("%s/Chart.yaml: %v", dir, err)
		}
		var meta chartMetadata
		if err := json.Unmarshal([]byte(toJSON(chartMap)), &meta); err != nil {
			return fmt.Errorf("%s/Chart.yaml: %v", dir, err)
		}
		values := map[string]interface{}{}
		data, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err == nil {
			if values, err = readYAML(data); err != nil {
				return fmt.Errorf("%s/values.yaml: %v", dir, err)
			}
		}
		if section, ok := parent.values[meta.Name].(map[string]interface{}); ok {
			merge(values, deepCopy(section).(map[string]interface{}))
		}
		globals, _ := values["global"].(map[string]interface{})
		if globals == nil {
			globals = map[string]interface{}{}
		}
		if parentGlobals, ok := parent.values["global"].(map[string]interface{}); ok {
			merge(globals, deepCopy(parentGlobals).(map[string]interface{}))
		}
		values["global"] = globals
		parent.values[meta.Name] = values
		child := &loadedChart{dir: dir, name: meta.Name, meta: meta, values: values, parent: parent}
		*charts = append(*charts, child)
		if err := loadSubcharts(child, charts); err != nil {
			return err
		}
	}
	return nil
}

type options struct {
	chartDir, name, namespace, fallback, valuesJSON, kubeVersion string
	valueFiles, apiVersions                                      listFlag
	notes                                                        bool
}

func run(o options) (string, error) {
	chartData, err := os.ReadFile(filepath.Join(o.chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chartMap, err := readYAML(chartData)
	if err != nil {
		return "", fmt.Errorf("Chart.yaml: %v", err)
	}
	var chart chartMetadata
	if err := json.Unmarshal([]byte(toJSON(chartMap)), &chart); err != nil {
		return "", fmt.Errorf("Chart.yaml: %v", err)
	}

	values := map[string]interface{}{}
	for _, path := range append([]string{filepath.Join(o.chartDir, "values.yaml")}, o.valueFiles...) {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		layer, err := readYAML(data)
		if err != nil {
			return "", fmt.Errorf("%s: %v", path, err)
		}
		merge(values, layer)
	}
	if o.valuesJSON != "" {
		if err := os.WriteFile(o.valuesJSON, []byte(toJSON(values)), 0o644); err != nil {
			return "", err
		}
	}

	charts := []*loadedChart{{dir: o.chartDir, name: chart.Name, meta: chart, values: values}}
	if err := loadSubcharts(charts[0], &charts); err != nil {
		return "", err
	}
	if o.valuesJSON != "" {
		for _, c := range charts[1:] {
			path := strings.TrimSuffix(o.valuesJSON, ".json") + "." + c.name + ".json"
			if err := os.WriteFile(path, []byte(toJSON(c.values)), 0o644); err != nil {
				return "", err
			}
		}
	}

	contents := map[string]string{}
	var names []string
	owner := map[string]*loadedChart{}
	for _, c := range charts {
		chartContents, chartNames, err := templateFiles(c.dir, c.prefix()+c.name)
		if err != nil {
			return "", err
		}
		for _, name := range chartNames {
			contents[name] = chartContents[name]
			owner[name] = c
		}
		names = append(names, chartNames...)
	}
	sort.Strings(names)
	r := &renderer{}
	r.root = template.New(chart.Name).Funcs(r.funcs()).Option("missingkey=zero")
	for _, name := range names {
		if _, err := r.root.New(name).Parse(contents[name]); err != nil {
			return "", err
		}
	}

	minor := strings.Split(strings.TrimPrefix(o.kubeVersion, "v"), ".")
	if len(minor) < 2 {
		return "", fmt.Errorf("bad -kube-version %q", o.kubeVersion)
	}
	var out strings.Builder
	for _, name := range names {
		c := owner[name]
		base := filepath.Base(name)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != o.notes || (isNotes && c != charts[0]) {
			continue
		}
		data := map[string]interface{}{
			"Values": c.values,
			"Release": release{
				Name: o.name, Namespace: o.namespace, Service: "Helm",
				IsInstall: true, Revision: 1,
			},
			"Chart": c.meta,
			"Capabilities": capabilities{
				KubeVersion: kubeVersion{
					Version: o.kubeVersion, GitVersion: o.kubeVersion,
					Major: minor[0], Minor: minor[1],
				},
				APIVersions: apiVersions(o.apiVersions),
			},
			"Files":    files{chartDir: c.dir, fallback: o.fallback},
			"Template": templateInfo{Name: name, BasePath: c.prefix() + c.name + "/templates"},
		}
		var buf bytes.Buffer
		if err := r.root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if isNotes {
			out.WriteString(text)
			continue
		}
		for _, doc := range documentSeparator.Split(text, -1) {
			if !hasContent(doc) {
				continue
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name,
				strings.TrimRight(strings.TrimLeft(doc, "\n"), " \t\n"))
		}
	}
	return out.String(), nil
}

func main() {
	var o options
	flag.StringVar(&o.chartDir, "chart", "", "the chart directory (required)")
	flag.StringVar(&o.name, "name", "remex", "the release name")
	flag.StringVar(&o.namespace, "namespace", "default", "the release namespace")
	flag.StringVar(&o.fallback, "files-fallback", "", "a directory .Files.Get reads when the chart has no such file")
	flag.StringVar(&o.valuesJSON, "values-json", "", "write the merged values here as JSON")
	flag.StringVar(&o.kubeVersion, "kube-version", "v1.29.0", ".Capabilities.KubeVersion")
	flag.Var(&o.valueFiles, "f", "a values file, merged over values.yaml (repeatable)")
	flag.Var(&o.apiVersions, "api-versions", "an API version .Capabilities.APIVersions.Has knows (repeatable)")
	flag.BoolVar(&o.notes, "notes", false, "render NOTES.txt instead of the manifests")
	flag.Parse()
	if o.chartDir == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	out, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}
