package data

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tinyDataset is a valid 2-view dataset: 6 train rows, 3 test rows, 3 classes.
func tinyDataset() *Dataset {
	d := &Dataset{Name: "tiny", Classes: 3, ClassNames: []string{"a", "b", "c"},
		TrainLabels: []int32{0, 1, 2, 0, 1, 2}, TestLabels: []int32{2, 1, 0},
		Provenance: map[string]any{"by": "test"}}
	for k, dim := range []int{2, 3} {
		v := View{Name: []string{"u", "w:x=1"}[k], Dim: dim, Params: map[string]any{"k": float64(k)}}
		for i := 0; i < 6*dim; i++ {
			v.Train = append(v.Train, float32(i*(k+1)))
		}
		for i := 0; i < 3*dim; i++ {
			v.Test = append(v.Test, float32(-i))
		}
		d.Views = append(d.Views, v)
	}
	return d
}

func TestDirRoundTrip(t *testing.T) {
	for _, st := range []storage{{}, {Compress: true}, {Float16: true}, {Compress: true, Float16: true}} {
		out := filepath.Join(t.TempDir(), "ds")
		want := tinyDataset()
		if err := writeDir(out, want, st); err != nil {
			t.Fatal(err)
		}
		got, err := LoadDir(out, nil)
		if err != nil {
			t.Fatal(err)
		}
		got.Dir = ""
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v: read back %+v\nwant %+v", st, got, want)
		}
		m, _ := readManifest(out)
		a, err := ReadNPY(filepath.Join(out, m.Views[0].Files["train"]))
		if err != nil || (a.Dtype == Float16) != st.Float16 {
			t.Fatalf("%+v: stored as %s (%v)", st, a.Dtype, err)
		}
		one, err := LoadDir(out, []string{"w:x=1"})
		if err != nil || len(one.Views) != 1 || one.Views[0].Dim != 3 {
			t.Fatalf("loading one view: %v", err)
		}
		if err := writeDir(out, want, storage{}); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("overwrite: %v", err)
		}
		entries, _ := os.ReadDir(filepath.Dir(out))
		if len(entries) != 1 {
			t.Errorf("temporary files left beside the dataset: %v", entries)
		}
	}
}

// TestDirBadInput damages a valid directory in one way at a time and checks the
// error names the file and the field.
func TestDirBadInput(t *testing.T) {
	edit := func(f func(m map[string]any)) func(dir string) {
		return func(dir string) {
			p := filepath.Join(dir, "manifest.json")
			b, _ := os.ReadFile(p)
			var m map[string]any
			json.Unmarshal(b, &m)
			f(m)
			b, _ = json.Marshal(m)
			os.WriteFile(p, b, 0o644)
		}
	}
	view0 := func(m map[string]any) map[string]any { return m["views"].([]any)[0].(map[string]any) }
	for _, tc := range []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"escape", edit(func(m map[string]any) { view0(m)["files"].(map[string]any)["train"] = "../../etc/passwd" }),
			"views[0].files.train: \"../../etc/passwd\" is outside the dataset directory"},
		{"absolute", edit(func(m map[string]any) { m["labels"].(map[string]any)["test"] = "/etc/passwd" }),
			"labels.test: \"/etc/passwd\" is outside"},
		{"rows differ", func(dir string) {
			WriteNPY(filepath.Join(dir, "w_x_1-train.npy"), NewFloat32([]int{5, 3}, make([]float32, 15)))
		}, "w_x_1-train.npy: shape (5, 3), want (6, 3)"},
		{"dim", edit(func(m map[string]any) { view0(m)["dim"] = 4 }), "u-train.npy: shape (6, 2), want (6, 4)"},
		{"nan", func(dir string) {
			x := make([]float32, 9)
			x[7] = float32(math.NaN())
			WriteNPY(filepath.Join(dir, "w_x_1-test.npy"), NewFloat32([]int{3, 3}, x))
		}, "w_x_1-test.npy: row 2 column 1 is NaN"},
		{"inf", func(dir string) {
			x := make([]float32, 6)
			x[1] = float32(math.Inf(-1))
			WriteNPY(filepath.Join(dir, "u-test.npy"), NewFloat32([]int{3, 2}, x))
		}, "u-test.npy: row 0 column 1 is -Inf"},
		{"label range", func(dir string) {
			WriteNPY(filepath.Join(dir, "labels-test.npy"), NewInt64([]int{3}, []int32{0, 3, 1}))
		}, "labels-test.npy: row 1: label 3 is outside [0, 3)"},
		{"label rows", func(dir string) {
			WriteNPY(filepath.Join(dir, "labels-train.npy"), NewInt64([]int{2}, []int32{0, 1}))
		}, "labels-train.npy: shape [2], want (6,)"},
		{"truncated npy", func(dir string) {
			p := filepath.Join(dir, "u-train.npy")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-3], 0o644)
		}, "u-train.npy: data: shape [6 2] of <f4 needs 48 bytes, file has 45"},
		{"float labels", func(dir string) {
			WriteNPY(filepath.Join(dir, "labels-test.npy"), NewFloat32([]int{3}, []float32{0, 1, 2}))
		}, "labels-test.npy: dtype <f4 is not an integer type"},
		{"format", edit(func(m map[string]any) { m["format"] = "other/9" }), `format: "other/9", want "mct-dataset/1"`},
		{"classes", edit(func(m map[string]any) { m["class_names"] = []string{"a"} }), "class_names: 1 names for 3 classes"},
		{"unknown field", edit(func(m map[string]any) { m["clases"] = 3 }), `unknown field "clases"`},
		{"missing", func(dir string) { os.Remove(filepath.Join(dir, "manifest.json")) }, "manifest.json: no such file"},
	} {
		dir := filepath.Join(t.TempDir(), "ds")
		if err := writeDir(dir, tinyDataset(), storage{}); err != nil {
			t.Fatal(err)
		}
		tc.damage(dir)
		_, err := LoadDir(dir, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", tc.name, err, tc.want)
		}
	}
	dir := filepath.Join(t.TempDir(), "ds")
	writeDir(dir, tinyDataset(), storage{})
	if _, err := LoadDir(dir, []string{"nope"}); err == nil || !strings.Contains(err.Error(), `no view "nope" (have: u, w:x=1)`) {
		t.Errorf("unknown view: %v", err)
	}
}

func TestImportAndDescribe(t *testing.T) {
	in := t.TempDir()
	w := npyWriter(t, in)
	ytr := w("ytr.npy", NewInt64([]int{4}, []int32{0, 1, 1, 0}))
	yte := w("yte.npy", &Array{Shape: []int{2}, Dtype: Uint8, Raw: []byte{1, 0}})
	a := w("a-tr.npy", NewFloat32([]int{4, 2}, []float32{1, 10, 2, 20, 3, 30, 4, 40}))
	b := w("a-te.npy", NewFloat16([]int{2, 2}, []float32{2.5, 25, 0, 0}))
	out := filepath.Join(t.TempDir(), "imp")
	if err := Import(map[string][2]string{"emb": {a, b}}, [2]string{ytr, yte}, 2, out); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDir(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := d.View("emb")
	// Column 0 of train is 1..4: mean 2.5, std sqrt(1.25).
	s := float32(math.Sqrt(1.25))
	if v.Mean[0] != 2.5 || math.Abs(float64(v.Std[0]-s)) > 1e-6 || v.Test[0] != 0 || math.Abs(float64(v.Train[0]+1.5/s)) > 1e-6 {
		t.Fatalf("standardisation: mean %v std %v train %v test %v", v.Mean, v.Std, v.Train, v.Test)
	}
	if !reflect.DeepEqual(d.TestLabels, []int32{1, 0}) {
		t.Fatalf("test labels %v", d.TestLabels)
	}
	desc, err := Describe(out)
	if err != nil || !strings.Contains(desc, "train 4 rows, test 2 rows") || !strings.Contains(desc, "emb") {
		t.Fatalf("Describe: %v\n%s", err, desc)
	}
	bad := w("bad.npy", NewFloat32([]int{3, 2}, make([]float32, 6)))
	err = Import(map[string][2]string{"emb": {bad, b}}, [2]string{ytr, yte}, 2, filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), "bad.npy: shape (3, 2), want (4, D)") {
		t.Errorf("row mismatch: %v", err)
	}
	err = Import(map[string][2]string{"emb": {a, b}}, [2]string{ytr, yte}, 1, filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), "ytr.npy: row 1: label 1 is outside [0, 1)") {
		t.Errorf("label range: %v", err)
	}

	// Truly unlabeled train rows carry -1; test labels must be known, and -2 is no label.
	yu := w("yu.npy", NewInt64([]int{4}, []int32{0, -1, 1, -1}))
	uout := filepath.Join(t.TempDir(), "unl")
	if err := Import(map[string][2]string{"emb": {a, b}}, [2]string{yu, yte}, 2, uout); err != nil {
		t.Fatal(err)
	}
	du, err := LoadDir(uout, nil)
	if err != nil || !reflect.DeepEqual(du.TrainLabels, []int32{0, -1, 1, -1}) {
		t.Fatalf("unknown labels: %v, %v", err, du)
	}
	if desc, err := Describe(uout); err != nil || !strings.Contains(desc, "train labels: 2 known, 2 unknown (-1)") {
		t.Fatalf("Describe with unknown labels: %v\n%s", err, desc)
	}
	for _, tc := range []struct{ train, test, want string }{
		{yu, w("yte-u.npy", NewInt64([]int{2}, []int32{-1, 0})), "yte-u.npy: row 0: label -1 is outside [0, 2) (the class count; test labels must be known"},
		{w("y-2.npy", NewInt64([]int{4}, []int32{0, -2, 1, 0})), yte, "y-2.npy: row 1: label -2 is outside [0, 2) (the class count; train labels may also be -1 (unknown))"},
	} {
		err := Import(map[string][2]string{"emb": {a, b}}, [2]string{tc.train, tc.test}, 2, filepath.Join(t.TempDir(), "x"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// TestReadFeatures: a features file is an (N, D) float matrix of finite values, D ≥ 1;
// anything else is one line naming the file.
func TestReadFeatures(t *testing.T) {
	dir := t.TempDir()
	w := npyWriter(t, dir)
	f64 := &Array{Shape: []int{2, 1}, Dtype: Float64, Raw: make([]byte, 16)}
	binary.LittleEndian.PutUint64(f64.Raw[8:], math.Float64bits(-2.5))
	x, n, d, err := ReadFeatures(w("f64.npy", f64))
	if err != nil || n != 2 || d != 1 || !reflect.DeepEqual(x, []float32{0, -2.5}) {
		t.Fatalf("float64: %v %d %d %v", x, n, d, err)
	}
	for _, tc := range []struct {
		a    *Array
		want string
	}{
		{NewFloat32([]int{3}, []float32{1, 2, 3}), "v.npy: shape [3], want a matrix (N, D) of features"},
		{NewFloat32([]int{3, 0}, nil), "v.npy: shape [3 0], want a matrix (N, D)"},
		{NewFloat32([]int{1, 2, 2}, make([]float32, 4)), "v.npy: shape [1 2 2], want a matrix"},
		{NewInt64([]int{2, 1}, []int32{1, 2}), "v.npy: dtype <i8 is not a float type"},
		{NewFloat32([]int{2, 2}, []float32{0, 1, float32(math.NaN()), 3}), "v.npy: row 1 column 0 is NaN"},
	} {
		_, _, _, err := ReadFeatures(w("v.npy", tc.a))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.a.Shape, err, tc.want)
		}
	}
}

// npyWriter returns a function that writes an array as dir/name and returns the path.
func npyWriter(t *testing.T, dir string) func(name string, a *Array) string {
	return func(name string, a *Array) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := WriteNPY(p, a); err != nil {
			t.Fatal(err)
		}
		return p
	}
}
