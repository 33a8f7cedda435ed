package sweep

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeGrid writes a grid file into a fresh directory and returns its path.
func writeGrid(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "grid.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExpandOrderNamesAndArgs(t *testing.T) {
	p := writeGrid(t, `{
		"comment": "label fractions × algorithms × seeds",
		"ranks": 2,
		"fixed": {"data": "data/fmnist", "epochs": 3, "hard": true},
		"vary": {
			"algo": ["supervised", "mct"],
			"views": [["hog", "gabor"], {"name": "nets", "value": ["mobilenet", "inception"]}],
			"labeled-fraction": [0.010, 0.1],
			"seed": [1, 2, 3]
		}
	}`)
	combos, err := Expand(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(combos) != 2*2*2*3 {
		t.Fatalf("got %d combinations, want 24", len(combos))
	}
	// The last axis varies fastest, like nested loops in file order.
	c := combos[7] // algo 0, views 1, fraction 0, seed 1
	if c.Index != 7 || c.Name != "algo-supervised_views-nets_labeled-fraction-0.010_seed-2" {
		t.Errorf("combination 7: index %d name %q", c.Index, c.Name)
	}
	want := []string{"--data=data/fmnist", "--epochs=3", "--hard=true", "--algo=supervised",
		"--views=mobilenet,inception", "--labeled-fraction=0.010", "--seed=2"}
	if got := c.Args(); !reflect.DeepEqual(got, want) {
		t.Errorf("combination 7 args\n got %q\nwant %q", got, want)
	}
	if last := combos[23]; last.Name != "algo-mct_views-nets_labeled-fraction-0.1_seed-3" {
		t.Errorf("last combination %q", last.Name)
	}
	names := map[string]bool{}
	for _, c := range combos {
		if names[c.Name] {
			t.Errorf("name %q repeated", c.Name)
		}
		names[c.Name] = true
	}
}

// TestCases: each case (flags that go together) is crossed with the vary product, as the
// outermost loop, and named by its flags: MPL on one view beside MCT on two in one grid.
func TestCases(t *testing.T) {
	p := writeGrid(t, `{
		"fixed": {"epochs": 3},
		"cases": [{"algo": "mpl", "views": ["hog"]}, {"algo": "mct", "views": ["hog", "gabor"]}, {"algo": "supervised"}],
		"vary": {"seed": [1, 2]}
	}`)
	combos, err := Expand(p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range combos {
		names = append(names, c.Name)
	}
	want := []string{"algo-mpl_views-hog_seed-1", "algo-mpl_views-hog_seed-2",
		"algo-mct_views-hog+gabor_seed-1", "algo-mct_views-hog+gabor_seed-2",
		"algo-supervised_seed-1", "algo-supervised_seed-2"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("names\n got %q\nwant %q", names, want)
	}
	if got, want := combos[3].Args(), []string{"--epochs=3", "--algo=mct", "--views=hog,gabor", "--seed=2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("combination 3 args\n got %q\nwant %q", got, want)
	}
	if got := combos[4].Args(); !reflect.DeepEqual(got, []string{"--epochs=3", "--algo=supervised", "--seed=1"}) {
		t.Errorf("combination 4 args %q", got)
	}
	if c := combos[2]; c.Index != 2 || len(c.Varied) != 3 || c.Varied[0].Flag != "algo" || c.Varied[2].Flag != "seed" {
		t.Errorf("combination 2: index %d, varied %+v", c.Index, c.Varied)
	}
}

func TestLoadDefaults(t *testing.T) {
	g, err := Load(writeGrid(t, `{"fixed": {"epochs": 1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if g.Ranks != 1 || g.Launcher != "mpirun" || !filepath.IsAbs(g.Dir) {
		t.Errorf("defaults: ranks %d launcher %q dir %q", g.Ranks, g.Launcher, g.Dir)
	}
	combos, err := g.Combos()
	if err != nil || len(combos) != 1 || combos[0].Name != "run" {
		t.Fatalf("grid without vary: %v %+v", err, combos)
	}
	if argv := g.launch("/bin/mct", []string{"train"}); !reflect.DeepEqual(argv, []string{"/bin/mct", "train"}) {
		t.Errorf("one rank launches %q", argv)
	}
	g.Ranks, g.LauncherArgs = 4, []string{"--oversubscribe"}
	if argv := g.launch("/bin/mct", []string{"train"}); !reflect.DeepEqual(argv, []string{"mpirun", "-np", "4", "--oversubscribe", "/bin/mct", "train"}) {
		t.Errorf("mpirun launch %q", argv)
	}
	g.Launcher, g.LauncherArgs = "srun", []string{"--mpi=pmix"}
	if argv := g.launch("/bin/mct", []string{"train"}); !reflect.DeepEqual(argv, []string{"srun", "--ntasks=4", "--mpi=pmix", "/bin/mct", "train"}) {
		t.Errorf("srun launch %q", argv)
	}
}

func TestGridErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"fixed": {"data": "../elsewhere"}}`, `field fixed.data: "../elsewhere" leaves the grid's directory`},
		{`{"fixed": {"data": "a/../../b"}}`, `leaves the grid's directory`},
		{`{"vary": {"data": ["ok", "/scratch/fmnist"]}}`, `field vary.data[1]: "/scratch/fmnist" is an absolute path`},
		{`{"vary": {"views": [["hog", "../x"]]}}`, `field vary.views[0][1]: "../x" leaves`},
		{`{"fixed": {"out": "x"}}`, `field fixed.out: set by the sweep itself`},
		{`{"vary": {"resume": [true]}}`, `field vary.resume: set by the sweep itself`},
		{`{"fixed": {"seed": 1}, "vary": {"seed": [1, 2]}}`, `field vary.seed: flag also set in fixed`},
		{`{"vary": {"seed": []}}`, `field vary.seed: want a non-empty list`},
		{`{"vary": {"seed": 3}}`, `field vary.seed: want a non-empty list`},
		{`{"vary": {"seed": [1, 1]}}`, `field vary.seed[1]: value "1" has the same name`},
		{`{"vary": {"tag": ["a b", "a/b"]}}`, `has the same name "a-b"`},
		{`{"fixed": {"x": null}}`, `field fixed.x: null is not a string, number or boolean`},
		{`{"fixed": {"--lr": 1}}`, `field fixed.--lr: not a flag name`},
		{`{"fixed": {"views": ["a,b"]}}`, `contains a comma`},
		{`{"ranks": 0}`, `field ranks: 0, want a positive number`},
		{`{"launcher": "aprun"}`, `field launcher: "aprun", want "mpirun" or "srun"`},
		{`{"vary": {"lr": [1e-4]}, "varry": {}}`, `unknown field "varry"`},
		{`{"fixed": {"lr": 1, "lr": 2}}`, `field fixed.lr: given twice`},
		{`{} {}`, `trailing data`},
		{`{"vary": {"x": [{"name": "n"}]}}`, `field vary.x[0]: want {"name": label, "value": value}`},
		{`{"cases": [{"algo": "mct"}], "vary": {"algo": ["mpl"]}}`, `field cases[0].algo: flag also set in vary`},
		{`{"fixed": {"views": "a"}, "cases": [{"algo": "mct", "views": "b"}]}`, `field cases[0].views: flag also set in fixed`},
		{`{"cases": [{"algo": "mct"}, {"algo": "mct"}]}`, `field cases[1]: the same flags and names as cases[0] (algo-mct)`},
		{`{"cases": [{}]}`, `field cases[0]: want at least one flag`},
		{`{"cases": []}`, `field cases: want a non-empty list`},
		{`{"cases": {"algo": "mct"}}`, `field cases: want a non-empty list`},
		{`{"cases": [{"out": "x"}]}`, `field cases[0].out: set by the sweep itself`},
		{`{"cases": [{"data": "/abs"}]}`, `field cases[0].data: "/abs" is an absolute path`},
	} {
		p := writeGrid(t, tc.body)
		_, err := Expand(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s\n got error %v\nwant it to name %s and contain %q", tc.body, err, p, tc.want)
		}
	}
}
