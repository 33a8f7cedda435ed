package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Grid is a parsed grid file: how every combination is launched and which
// train flags it sets.
type Grid struct {
	// Path is the grid file; Dir its directory, where runs/ is created and
	// relative paths in the grid are resolved (train runs with Dir as its
	// working directory).
	Path, Dir string
	// Ranks is the number of processes per combination (views × replicas);
	// more than one launches the trainer through Launcher.
	Ranks int
	// Launcher is "mpirun" or "srun"; LauncherArgs go right after it
	// (e.g. "--oversubscribe", "--mpi=pmix").
	Launcher     string
	LauncherArgs []string
	// Fixed holds the flags every combination gets, in file order.
	Fixed []Setting
	// Vary holds the varied flags in file order: the first is the outermost
	// loop of the cartesian product, the last the innermost.
	Vary []Axis
	// Cases, when given, are alternative sets of flags that go together (an
	// algorithm and the views it needs), each crossed with Vary's product as
	// a loop outside it.
	Cases [][]Setting
}

// Setting is one train flag with its value, as passed: --Flag=Value. Label is
// the short form used in combination names.
type Setting struct {
	Flag, Value, Label string
}

// Axis is one varied flag and its values.
type Axis struct {
	Flag   string
	Values []Setting
}

// Combo is one combination of a grid.
type Combo struct {
	// Index is the position in the cartesian product: the job-array index.
	Index int
	// Name is the run directory's name under runs/, built from the varied
	// settings, so it does not change when the grid grows.
	Name string
	// Settings are the fixed settings followed by the varied ones.
	Settings []Setting
	// Varied are the settings that distinguish this combination.
	Varied []Setting
}

// Args returns the train flags of the combination, without --out and --resume.
func (c Combo) Args() []string {
	args := make([]string, len(c.Settings))
	for i, s := range c.Settings {
		args[i] = "--" + s.Flag + "=" + s.Value
	}
	return args
}

// gridFile is the JSON shape of a grid; vary is decoded by hand to keep the
// order of its keys.
type gridFile struct {
	Ranks        *int            `json:"ranks"`
	Launcher     string          `json:"launcher"`
	LauncherArgs []string        `json:"launcher_args"`
	Fixed        json.RawMessage `json:"fixed"`
	Vary         json.RawMessage `json:"vary"`
	Cases        json.RawMessage `json:"cases"`
	// Comment is free text for the reader of the grid file.
	Comment json.RawMessage `json:"comment"`
}

// reservedFlags are set by Run itself.
var reservedFlags = map[string]bool{"out": true, "resume": true}

var flagName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Expand reads the grid file at gridPath (JSON, or TOML when it ends in
// .toml) and returns its combinations in job-array order.
func Expand(gridPath string) ([]Combo, error) {
	g, err := Load(gridPath)
	if err != nil {
		return nil, err
	}
	return g.Combos()
}

// Load reads and checks a grid file.
func Load(gridPath string) (*Grid, error) {
	raw, err := os.ReadFile(gridPath)
	if err != nil {
		return nil, fmt.Errorf("grid: %w", err)
	}
	abs, err := filepath.Abs(gridPath)
	if err != nil {
		return nil, fmt.Errorf("grid %s: %w", gridPath, err)
	}
	if strings.EqualFold(filepath.Ext(gridPath), ".toml") {
		if raw, err = tomlToJSON(raw); err != nil {
			return nil, fmt.Errorf("grid %s: %w", gridPath, err)
		}
	}
	g, err := parseGrid(raw)
	if err != nil {
		return nil, fmt.Errorf("grid %s: %w", gridPath, err)
	}
	g.Path, g.Dir = abs, filepath.Dir(abs)
	return g, nil
}

func parseGrid(raw []byte) (*Grid, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var f gridFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a grid (JSON object with ranks, launcher, launcher_args, fixed, vary, cases): %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the grid object")
	}
	g := &Grid{Ranks: 1, Launcher: "mpirun", LauncherArgs: f.LauncherArgs}
	if f.Ranks != nil {
		if *f.Ranks < 1 {
			return nil, fmt.Errorf("field ranks: %d, want a positive number of processes per run (views × replicas)", *f.Ranks)
		}
		g.Ranks = *f.Ranks
	}
	switch f.Launcher {
	case "":
	case "mpirun", "srun":
		g.Launcher = f.Launcher
	default:
		return nil, fmt.Errorf("field launcher: %q, want \"mpirun\" or \"srun\"", f.Launcher)
	}
	var err error
	if g.Fixed, err = decodeFixed(f.Fixed); err != nil {
		return nil, err
	}
	if g.Vary, err = decodeVary(f.Vary); err != nil {
		return nil, err
	}
	if g.Cases, err = decodeCases(f.Cases); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for _, s := range g.Fixed {
		seen[s.Flag] = "fixed"
	}
	for _, a := range g.Vary {
		if where, ok := seen[a.Flag]; ok {
			return nil, fmt.Errorf("field vary.%s: flag also set in %s; set it in one place", a.Flag, where)
		}
		seen[a.Flag] = "vary"
	}
	names := map[string]int{}
	for i, c := range g.Cases {
		for _, s := range c {
			if where, ok := seen[s.Flag]; ok {
				return nil, fmt.Errorf("field cases[%d].%s: flag also set in %s; set it in one place", i, s.Flag, where)
			}
		}
		name := settingsName(c)
		if j, ok := names[name]; ok {
			return nil, fmt.Errorf("field cases[%d]: the same flags and names as cases[%d] (%s); give one a distinct \"name\"", i, j, name)
		}
		names[name] = i
	}
	return g, nil
}

// decodeCases decodes a list of objects of flag: value, each a case.
func decodeCases(raw json.RawMessage) ([][]Setting, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		return nil, fmt.Errorf("field cases: want a non-empty list of objects of flag: value")
	}
	cases := make([][]Setting, len(list))
	for i, c := range list {
		field := fmt.Sprintf("cases[%d]", i)
		keys, vals, err := members(c, field)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("field %s: want at least one flag", field)
		}
		for k, key := range keys {
			s, err := decodeValue(vals[k], field+"."+key, key)
			if err != nil {
				return nil, err
			}
			cases[i] = append(cases[i], s)
		}
	}
	return cases, nil
}

// settingsName is the part of a combination's name that settings make: flag-label
// pairs joined by '_'.
func settingsName(settings []Setting) string {
	parts := make([]string, len(settings))
	for k, s := range settings {
		parts[k] = sanitize(s.Flag) + "-" + s.Label
	}
	return strings.Join(parts, "_")
}

// members decodes a JSON object into its members in file order.
func members(raw json.RawMessage, field string) ([]string, []json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, fmt.Errorf("field %s: want an object of flag: value", field)
	}
	var keys []string
	var vals []json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("field %s: %w", field, err)
		}
		k := t.(string)
		if seen[k] {
			return nil, nil, fmt.Errorf("field %s.%s: given twice", field, k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("field %s.%s: %w", field, k, err)
		}
		if !flagName.MatchString(k) {
			return nil, nil, fmt.Errorf("field %s.%s: not a flag name (letters, digits, '-', '_', '.'; no leading dashes)", field, k)
		}
		if reservedFlags[k] {
			return nil, nil, fmt.Errorf("field %s.%s: set by the sweep itself (runs/<combination>), remove it", field, k)
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}
	return keys, vals, nil
}

func decodeFixed(raw json.RawMessage) ([]Setting, error) {
	keys, vals, err := members(raw, "fixed")
	if err != nil {
		return nil, err
	}
	out := make([]Setting, len(keys))
	for i, k := range keys {
		if out[i], err = decodeValue(vals[i], "fixed."+k, k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func decodeVary(raw json.RawMessage) ([]Axis, error) {
	keys, vals, err := members(raw, "vary")
	if err != nil {
		return nil, err
	}
	axes := make([]Axis, len(keys))
	for i, k := range keys {
		field := "vary." + k
		var list []json.RawMessage
		if err := json.Unmarshal(vals[i], &list); err != nil || len(list) == 0 {
			return nil, fmt.Errorf("field %s: want a non-empty list of values", field)
		}
		axes[i].Flag = k
		labels := map[string]string{}
		for j, v := range list {
			s, err := decodeValue(v, fmt.Sprintf("%s[%d]", field, j), k)
			if err != nil {
				return nil, err
			}
			if prev, ok := labels[s.Label]; ok {
				return nil, fmt.Errorf("field %s[%d]: value %q has the same name %q as %q; give one a distinct \"name\"", field, j, s.Value, s.Label, prev)
			}
			labels[s.Label] = s.Value
			axes[i].Values = append(axes[i].Values, s)
		}
	}
	return axes, nil
}

// decodeValue turns one grid value into a flag setting: a string, number or
// boolean as written; a list of them joined by commas (a view set); or
// {"name": label, "value": any of those} to choose the label.
func decodeValue(raw json.RawMessage, field, flag string) (Setting, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var named struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&named); err != nil || named.Name == "" || len(named.Value) == 0 {
			return Setting{}, fmt.Errorf("field %s: want {\"name\": label, \"value\": value}", field)
		}
		s, err := decodeValue(named.Value, field+".value", flag)
		if err != nil {
			return Setting{}, err
		}
		s.Label = sanitize(named.Name)
		return s, nil
	}
	var text string
	if len(raw) > 0 && raw[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
			return Setting{}, fmt.Errorf("field %s: want a non-empty list of strings or numbers", field)
		}
		parts := make([]string, len(list))
		for i, e := range list {
			p, err := scalar(e, fmt.Sprintf("%s[%d]", field, i))
			if err != nil {
				return Setting{}, err
			}
			if strings.Contains(p, ",") {
				return Setting{}, fmt.Errorf("field %s[%d]: %q contains a comma, which separates list items", field, i, p)
			}
			if err := checkInside(p, fmt.Sprintf("%s[%d]", field, i)); err != nil {
				return Setting{}, err
			}
			parts[i] = p
		}
		text = strings.Join(parts, ",")
	} else {
		var err error
		if text, err = scalar(raw, field); err != nil {
			return Setting{}, err
		}
		if err := checkInside(text, field); err != nil {
			return Setting{}, err
		}
	}
	return Setting{Flag: flag, Value: text, Label: sanitize(strings.ReplaceAll(text, ",", "+"))}, nil
}

// scalar returns a string, number or boolean exactly as the file spells it,
// so 0.010 stays 0.010 in flags and names.
func scalar(raw json.RawMessage, field string) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", fmt.Errorf("field %s: missing value", field)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("field %s: %w", field, err)
		}
		if s == "" {
			return "", fmt.Errorf("field %s: empty string", field)
		}
		return s, nil
	case 't', 'f':
		if string(raw) == "true" || string(raw) == "false" {
			return string(raw), nil
		}
	case 'n':
	default:
		var n json.Number
		if err := json.Unmarshal(raw, &n); err == nil {
			return n.String(), nil
		}
	}
	return "", fmt.Errorf("field %s: %s is not a string, number or boolean", field, raw)
}

// checkInside refuses a value that names a path outside the grid's directory:
// an absolute path or one that climbs out with "..". Flags are text, so each
// comma-separated element of a value is checked.
func checkInside(value, field string) error {
	for _, v := range strings.Split(value, ",") {
		if filepath.IsAbs(v) {
			return fmt.Errorf("field %s: %q is an absolute path; paths in a grid must stay inside the grid's directory (use a path relative to it, or link the data there)", field, v)
		}
		c := filepath.Clean(v)
		if c == ".." || strings.HasPrefix(c, "../") {
			return fmt.Errorf("field %s: %q leaves the grid's directory; paths in a grid must stay inside it (link the data there)", field, v)
		}
	}
	return nil
}

// sanitize keeps a label usable as part of a directory name: every other
// character becomes one '-'.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '+' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// Combos returns the cartesian product of the varied flags, the last axis
// changing fastest, once for each case (the outermost loop). A grid with
// nothing varied has one combination, "run".
func (g *Grid) Combos() ([]Combo, error) {
	cases := g.Cases
	if len(cases) == 0 {
		cases = [][]Setting{nil}
	}
	product := 1
	for _, a := range g.Vary {
		product *= len(a.Values)
		if product*len(cases) > 1_000_000 {
			return nil, fmt.Errorf("grid %s: more than a million combinations; split the sweep", g.Path)
		}
	}
	combos := make([]Combo, len(cases)*product)
	for i := range combos {
		c := Combo{Index: i, Settings: append([]Setting(nil), g.Fixed...)}
		rest := i % product
		varied := make([]Setting, len(g.Vary))
		for k := len(g.Vary) - 1; k >= 0; k-- {
			a := g.Vary[k]
			varied[k] = a.Values[rest%len(a.Values)]
			rest /= len(a.Values)
		}
		varied = append(slices.Clone(cases[i/product]), varied...)
		c.Name = settingsName(varied)
		if c.Name == "" {
			c.Name = "run"
		}
		c.Varied = varied
		c.Settings = append(c.Settings, varied...)
		combos[i] = c
	}
	return combos, nil
}
