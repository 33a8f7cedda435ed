package sweep

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sameGrid writes a grid as TOML and as JSON, expands both and fails unless they give
// the same combinations, which it returns, and the same loaded grid.
func sameGrid(t *testing.T, toml, json string) ([]Combo, *Grid) {
	t.Helper()
	dir := t.TempDir()
	paths := [2]string{filepath.Join(dir, "grid.toml"), filepath.Join(dir, "grid.json")}
	var combos [2][]Combo
	var grids [2]*Grid
	for i, body := range []string{toml, json} {
		if err := os.WriteFile(paths[i], []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		var err error
		if grids[i], err = Load(paths[i]); err != nil {
			t.Fatal(err)
		}
		if combos[i], err = grids[i].Combos(); err != nil {
			t.Fatal(err)
		}
		grids[i].Path = "" // the file name differs, nothing else may
	}
	if !reflect.DeepEqual(combos[0], combos[1]) {
		t.Errorf("TOML and JSON grids differ:\n%+v\n%+v", combos[0], combos[1])
	}
	if !reflect.DeepEqual(grids[0], grids[1]) {
		t.Errorf("TOML and JSON grids load differently:\n%+v\n%+v", grids[0], grids[1])
	}
	return combos[0], grids[0]
}

func TestTOMLGridEqualsJSON(t *testing.T) {
	a, g := sameGrid(t, `# MCT against its baselines
comment = 'label fractions × "algorithms"'
ranks = 2
launcher_args = ["--oversubscribe"]

[fixed]
data = "data/fmnist"   # relative to this file
epochs = 1_000
"mct-lr" = +1.25e-4
hard = true

[vary]
algo = ["supervised",
        "mct",   # the method
]
views = [["hog", "gabor"], {name = "nets", value = ["mobilenet", "inception"]}]
labeled = [0.010, 0.1]
tag = ["caf\u00e9\t"]
`, `{"comment": "x", "ranks": 2, "launcher_args": ["--oversubscribe"],
		"fixed": {"data": "data/fmnist", "epochs": 1000, "mct-lr": 1.25e-4, "hard": true},
		"vary": {"algo": ["supervised", "mct"],
		         "views": [["hog", "gabor"], {"name": "nets", "value": ["mobilenet", "inception"]}],
		         "labeled": [0.010, 0.1], "tag": ["café\t"]}}`)
	if len(a) != 8 || a[3].Name != "algo-supervised_views-nets_labeled-0.1_tag-caf--" {
		t.Errorf("%d combinations, #3 %q", len(a), a[3].Name)
	}
	if g.Ranks != 2 || !reflect.DeepEqual(g.LauncherArgs, []string{"--oversubscribe"}) {
		t.Errorf("load: %+v", g)
	}
}

// TestTOMLCases: a TOML grid's cases, an array of inline tables, equal the JSON grid's.
func TestTOMLCases(t *testing.T) {
	a, _ := sameGrid(t, `cases = [{algo = "mpl", views = ["hog"]}, {algo = "mct", views = ["hog", "gabor"]}]
[vary]
seed = [1, 2]
`, `{"cases": [{"algo": "mpl", "views": ["hog"]}, {"algo": "mct", "views": ["hog", "gabor"]}],
		"vary": {"seed": [1, 2]}}`)
	if len(a) != 4 {
		t.Errorf("%d combinations, want 4", len(a))
	}
}

func TestTOMLErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"ranks = 2\nx = \"open\n", "line 2: string not closed on its line"},
		{"[fixed]\nlr = 1\nlr = 2\n", `line 3: key "lr" given twice`},
		{"[fixed]\n[fixed]\n", "line 2: table [fixed] defined twice"},
		{"[[vary]]\n", "line 1: arrays of tables"},
		{"[fixed]\nwhen = 2024-01-02\n", `line 2: "2024-01-02": dates and times`},
		{"[fixed]\nn = 0x10\n", `line 2: "0x10": write numbers in decimal`},
		{"[fixed]\ns = '''a'''\n", "line 2: multi-line strings"},
		{"[fixed]\na.b = 1\n", "line 2: after key \"a\": want = (dotted keys are not supported)"},
		{"[fixed]\nx = hog\n", `line 2: "hog" is not a string, number, boolean`},
		{"[vary]\nv = [{name = \"a\",\n value = 1}]\n", "line 2: inline table not closed"},
		{"[vary]\nseed = [1, 2\n", "line 3: array not closed with ]"},
		{"ranks = 2 3\n", `line 1: unexpected "3" after the value`},
		{"[fixed]\nx = \"\\q\"\n", `line 2: unknown escape \q`},
		{"[fixed]\nx = 1__0\n", "underscores go between digits"},
		{"[varry]\nseed = [1]\n", `unknown field "varry"`},
		{"[fixed]\ndata = \"../up\"\n", `field fixed.data: "../up" leaves the grid's directory`},
	} {
		p := filepath.Join(t.TempDir(), "grid.toml")
		os.WriteFile(p, []byte(tc.body), 0o644)
		_, err := Expand(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q\n got error %v\nwant it to name %s and contain %q", tc.body, err, p, tc.want)
		}
	}
}
