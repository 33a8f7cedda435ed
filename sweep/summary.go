package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SummaryFile is the name of the file the trainer writes into its run
// directory when, and only when, the run finished.
const SummaryFile = "summary.json"

// Accuracy is an accuracy of the views' ensemble and of each view, and how
// alike the views' errors were (absent from summaries written before the
// trainer measured it, and empty for a single view).
type Accuracy struct {
	Ensemble     float64            `json:"ensemble"`
	PerView      map[string]float64 `json:"per_view"`
	SharedErrors []SharedErrors     `json:"shared_errors"`
}

// SharedErrors is, for views A and B, the fraction of the split's examples
// that both get wrong, that fraction if their errors were independent (the
// product of their error rates), and the fraction both get wrong with the
// same class: the trainer's train.SharedErrors as summary.json stores it.
type SharedErrors struct {
	A           string  `json:"a"`
	B           string  `json:"b"`
	BothWrong   float64 `json:"both_wrong"`
	Independent float64 `json:"if_independent"`
	SameWrong   float64 `json:"same_wrong_class"`
}

// Summary is the summary.json of a finished run.
type Summary struct {
	Algo                     string            `json:"algo"`
	Views                    []string          `json:"views"`
	LabeledFraction          float64           `json:"labeled_fraction"`
	Seed                     uint64            `json:"seed"`
	TestAccuracy             *Accuracy         `json:"test_accuracy"`
	ValAccuracy              *Accuracy         `json:"val_accuracy"`
	WarmupTestAccuracy       *Accuracy         `json:"warmup_test_accuracy"`
	Updates                  int64             `json:"updates"`
	WallSeconds              float64           `json:"wall_seconds"`
	ExamplesPerSecondPerView float64           `json:"examples_per_second_per_view"`
	ParamChecksum            map[string]string `json:"param_checksum"`
	Config                   json.RawMessage   `json:"config"`
}

// Result is a finished run: its directory and summary, and the settings that
// tell it apart from other runs (its flattened config, plus the varied grid
// flags when collected from a grid).
type Result struct {
	Dir      string
	Summary  Summary
	Settings map[string]string
}

// ReadResult reads and checks dir/summary.json.
func ReadResult(dir string) (Result, error) {
	path := filepath.Join(dir, SummaryFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return Result{}, err
	}
	var s Summary
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&s); err != nil {
		return Result{}, fmt.Errorf("%s: not a run summary: %w", path, err)
	}
	if err := s.check(); err != nil {
		return Result{}, fmt.Errorf("%s: %w", path, err)
	}
	settings, err := flattenConfig(s.Config)
	if err != nil {
		return Result{}, fmt.Errorf("%s: field config: %w", path, err)
	}
	return Result{Dir: dir, Summary: s, Settings: settings}, nil
}

func (s *Summary) check() error {
	if s.Algo == "" {
		return errors.New("field algo: missing (want supervised, cotrain, mct or mpl)")
	}
	if len(s.Views) == 0 {
		return errors.New("field views: missing or empty")
	}
	seen := map[string]bool{}
	for _, v := range s.Views {
		if v == "" || seen[v] {
			return fmt.Errorf("field views: %q is empty or repeated", v)
		}
		seen[v] = true
	}
	if !(s.LabeledFraction > 0 && s.LabeledFraction <= 1) {
		return fmt.Errorf("field labeled_fraction: %v, want a fraction in (0, 1]", s.LabeledFraction)
	}
	if s.TestAccuracy == nil {
		return errors.New("field test_accuracy: missing")
	}
	for _, a := range []struct {
		name string
		acc  *Accuracy
	}{{"test_accuracy", s.TestAccuracy}, {"val_accuracy", s.ValAccuracy}, {"warmup_test_accuracy", s.WarmupTestAccuracy}} {
		if a.acc != nil {
			if err := a.acc.check(s.Views); err != nil {
				return fmt.Errorf("field %s.%w", a.name, err)
			}
		}
	}
	return nil
}

func (a *Accuracy) check(views []string) error {
	if !validAccuracy(a.Ensemble) {
		return fmt.Errorf("ensemble: %v, want an accuracy in [0, 1]", a.Ensemble)
	}
	for _, v := range views {
		x, ok := a.PerView[v]
		if !ok {
			return fmt.Errorf("per_view: no accuracy for view %q", v)
		}
		if !validAccuracy(x) {
			return fmt.Errorf("per_view.%s: %v, want an accuracy in [0, 1]", v, x)
		}
	}
	if len(a.PerView) != len(views) {
		return fmt.Errorf("per_view: %d entries for %d views", len(a.PerView), len(views))
	}
	for i, e := range a.SharedErrors {
		_, okA := a.PerView[e.A]
		_, okB := a.PerView[e.B]
		if !okA || !okB || e.A == e.B {
			return fmt.Errorf("shared_errors[%d]: views %q and %q, want two different views of the run", i, e.A, e.B)
		}
		for _, f := range []struct {
			name string
			x    float64
		}{{"both_wrong", e.BothWrong}, {"if_independent", e.Independent}, {"same_wrong_class", e.SameWrong}} {
			if !validAccuracy(f.x) {
				return fmt.Errorf("shared_errors[%d].%s: %v, want a fraction in [0, 1]", i, f.name, f.x)
			}
		}
	}
	return nil
}

// pairErrors returns the shared errors a reports for views x and y, in
// either order (they are symmetric).
func (a *Accuracy) pairErrors(x, y string) (SharedErrors, bool) {
	if a == nil {
		return SharedErrors{}, false
	}
	for _, e := range a.SharedErrors {
		if e.A == x && e.B == y || e.A == y && e.B == x {
			return e, true
		}
	}
	return SharedErrors{}, false
}

func validAccuracy(x float64) bool { return x >= 0 && x <= 1 && !math.IsNaN(x) }

// flattenConfig turns the config object into dotted, normalised keys
// (normKey) and JSON-text values, so that runs can be compared setting by
// setting and with the flags of a grid.
func flattenConfig(raw json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("want an object")
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, x := range m {
			key := prefix + normKey(k)
			if sub, ok := x.(map[string]any); ok {
				walk(key+".", sub)
				continue
			}
			switch x := x.(type) {
			case string:
				out[key] = x
			case json.Number:
				out[key] = x.String()
			default:
				b, _ := json.Marshal(x)
				out[key] = string(b)
			}
		}
	}
	walk("", m)
	return out, nil
}

// normKey compares setting names the way flags and JSON fields are spelled
// interchangeably: labeled-fraction and labeled_fraction are one setting.
func normKey(k string) string {
	return strings.ToLower(strings.ReplaceAll(k, "-", "_"))
}

// identityKeys are settings that never distinguish a configuration: the
// columns every table has anyway (algo, views, labeled fraction, which mct
// train calls --labeled), the seed (what tables average over) and where a
// run writes.
var identityKeys = map[string]bool{
	"algo": true, "views": true, "labeled_fraction": true, "labeled": true, "seed": true,
	"out": true, "out_dir": true, "run_dir": true, "dir": true, "resume": true,
}

// distinguishing returns the settings, sorted, whose values differ between
// runs, leaving out identityKeys.
func distinguishing(runs []Result) []string {
	values := map[string]map[string]bool{}
	for _, r := range runs {
		for k := range r.Settings {
			if values[k] == nil {
				values[k] = map[string]bool{}
			}
		}
	}
	for _, r := range runs {
		for k := range values {
			v, ok := r.Settings[k]
			if !ok {
				v = "\x00missing"
			}
			values[k][v] = true
		}
	}
	var keys []string
	for k, vs := range values {
		last := k[strings.LastIndexByte(k, '.')+1:]
		if len(vs) > 1 && !identityKeys[normKey(last)] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
