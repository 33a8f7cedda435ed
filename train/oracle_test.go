package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"mct/data"
	"mct/internal/testenv"
	"mct/nn"
)

// pyTorchOracle is the PyTorch implementation of the MCT step shared with bench/mct.
var pyTorchOracle = filepath.Join("..", "bench", "mct", "mct_step.py")

// systemPython is Debian's interpreter, the one python3-torch is installed for.
const systemPython = testenv.Python

// needTorch ends the test unless PyTorch can be imported: a skip, or under CI a failure.
func needTorch(t *testing.T) { t.Helper(); testenv.Torch(t, systemPython) }

type oracleCase struct {
	name     string
	arch     string
	dims     []int
	replicas int
	hard     bool
	exactH   bool
	noFeed   bool // --no-feedback
	steps    int
	pseudoT  float32
	temp     float32 // the probe's logit temperature
}

// TestMCTStepMatchesPyTorch runs mctUpdate (local transport, CPU backend) and the
// independent PyTorch step of bench/mct/mct_step.py from the same weights on the same
// batches and compares every view's parameters, BatchNorm statistics, h and losses.
// Hard pseudo-labels make the runs fully independent (PyTorch takes its own argmax);
// in sampled mode PyTorch is given the labels Go drew (nn's RNG is tested in nn).
func TestMCTStepMatchesPyTorch(t *testing.T) {
	needTorch(t)
	cases := []oracleCase{
		{name: "fcnn-V2-hard", arch: "fcnn", dims: []int{5, 7}, replicas: 1, hard: true, steps: 2, pseudoT: 1, temp: 1},
		{name: "mlp-V3-hard", arch: "mlp", dims: []int{5, 6, 7}, replicas: 1, hard: true, steps: 2, pseudoT: 1, temp: 1},
		{name: "fcnn-V3-sampled", arch: "fcnn", dims: []int{6, 5, 7}, replicas: 1, steps: 2, pseudoT: 1, temp: 1},
		{name: "mlp-V2-sampled-exact", arch: "mlp", dims: []int{7, 5}, replicas: 1, exactH: true, steps: 2, pseudoT: 1, temp: 1},
		{name: "fcnn-V2-hard-exact", arch: "fcnn", dims: []int{5, 6}, replicas: 1, hard: true, exactH: true, steps: 1, pseudoT: 1, temp: 1},
		{name: "fcnn-V3-sampled-exact-T", arch: "fcnn", dims: []int{5, 6, 7}, replicas: 1, exactH: true, steps: 2, pseudoT: 2, temp: 1.5},
		{name: "fcnn-V3-sampled-no-feedback", arch: "fcnn", dims: []int{6, 5, 7}, replicas: 1, noFeed: true, steps: 2, pseudoT: 1, temp: 1},
		// Two data-parallel replicas per view must give the one-replica result.
		{name: "fcnn-V2-hard-2replicas", arch: "fcnn", dims: []int{5, 7}, replicas: 2, hard: true, steps: 2, pseudoT: 1, temp: 1},
		{name: "mlp-V3-sampled-2replicas", arch: "mlp", dims: []int{6, 7, 5}, replicas: 2, steps: 2, pseudoT: 1, temp: 1},
	}
	// Go runs first, then one PyTorch process for every case (importing torch takes
	// seconds), then the comparisons.
	runs := make([]oracleRun, len(cases))
	dirs := make([]string, len(cases))
	for i, tc := range cases {
		runs[i] = prepareOracle(t, tc)
		dirs[i] = runs[i].dir
	}
	if out, err := exec.Command(systemPython, append([]string{pyTorchOracle, "oracle"}, dirs...)...).CombinedOutput(); err != nil {
		t.Fatalf("%s oracle: %v\n%s", pyTorchOracle, err, out)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { compareOracle(t, tc, runs[i]) })
	}
}

// Sizes of the oracle runs: unlabeled batch, labeled batch, classes.
const oB, oBL, oC = 16, 8, 4

// oLR is the MCT learning rate of the oracle runs: large enough that two updates move
// the weights visibly (about 5%), so the comparison is not of nearly equal inputs.
const oLR = 0.01

// oracleRun is one case's Go result and the directory shared with PyTorch.
type oracleRun struct {
	dir  string
	runs [][]viewRun
}

// prepareOracle runs tc's updates in Go and writes what PyTorch needs to redo them:
// the initial weights, the batches, and in sampled mode the pseudo-labels Go drew.
func prepareOracle(t *testing.T, tc oracleCase) oracleRun {
	const B, BL, C = oB, oBL, oC
	cfg := Config{Arch: tc.arch, Hidden: []int{8, 8, 8}, Temperature: tc.temp, Seed: 7,
		Batch: B, LabeledBatch: BL, MCTLR: oLR, Clip: 1, PseudoT: tc.pseudoT, Hard: tc.hard, ExactH: tc.exactH, NoFeedback: tc.noFeed}
	ds := RandomViews(tc.dims, C, 64, 11)
	// Disjoint, unsorted rows for every batch, so a mix-up of indices would show.
	perm := rand.New(rand.NewPCG(15, 16)).Perm(len(ds.TrainLabels))
	var plan batchPlan
	for s := 0; s < tc.steps; s++ {
		rows := perm[s*(B+BL) : (s+1)*(B+BL)]
		plan.U, plan.L = append(plan.U, rows[:B]), append(plan.L, rows[B:])
	}
	runs := runSteps(t, cfg, ds, tc.replicas, plan, nil, nil)
	V := len(tc.dims)

	dir := t.TempDir()
	spec := map[string]any{"arch": tc.arch, "hidden": cfg.Hidden, "classes": C, "slope": 0.01,
		"temperature": tc.temp, "bn_momentum": 0.1, "bn_eps": 1e-5, "mct_lr": oLR, "clip": 1,
		"pseudo_t": tc.pseudoT, "hard": tc.hard, "exact_h": tc.exactH, "no_feedback": tc.noFeed, "steps": tc.steps}
	var views []map[string]any
	for v, d := range tc.dims {
		views = append(views, map[string]any{"in": d})
		r0 := runs[v][0]
		writeNPY(t, dir, fmt.Sprintf("params_v%d.npy", v), data.NewFloat32([]int{len(r0.InitParams)}, r0.InitParams))
		writeNPY(t, dir, fmt.Sprintf("buffers_v%d.npy", v), data.NewFloat32([]int{len(r0.InitBuffers)}, r0.InitBuffers))
	}
	spec["views"] = views
	for s := 0; s < tc.steps; s++ {
		for v, d := range tc.dims {
			writeNPY(t, dir, fmt.Sprintf("u%d_v%d.npy", s, v), data.NewFloat32([]int{B, d}, gatherRows(ds.Views[v].Train, d, plan.U[s])))
			writeNPY(t, dir, fmt.Sprintf("x%d_v%d.npy", s, v), data.NewFloat32([]int{BL, d}, gatherRows(ds.Views[v].Train, d, plan.L[s])))
		}
		y := make([]int32, BL)
		for i, e := range plan.L[s] {
			y[i] = ds.TrainLabels[e]
		}
		writeNPY(t, dir, fmt.Sprintf("y%d.npy", s), data.NewInt64([]int{BL}, y))
		if !tc.hard {
			var flat []int32
			for _, row := range globalYHat(runs, s, B) {
				flat = append(flat, row...)
			}
			writeNPY(t, dir, fmt.Sprintf("yhat%d.npy", s), data.NewInt64([]int{V, B}, flat))
		}
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	return oracleRun{dir: dir, runs: runs}
}

// compareOracle checks Go's run of tc against PyTorch's.
func compareOracle(t *testing.T, tc oracleCase, o oracleRun) {
	const B = oB
	dir, runs, V := o.dir, o.runs, len(tc.dims)
	var py struct {
		H          [][]float64 `json:"h"`
		HScale     [][]float64 `json:"h_scale"`
		LossBefore [][]float64 `json:"loss_before"`
		LossAfter  [][]float64 `json:"loss_after"`
		YHat       [][][]int32 `json:"yhat"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &py); err != nil {
		t.Fatalf("out.json: %v", err)
	}

	const tol = 1e-5
	// The same updates in float64 tell how well conditioned the problem is: where
	// PyTorch's own float32 run strays from it by more than tol/10, no float32
	// implementation can be held to tol, and the data must be chosen again.
	for v := 0; v < V; v++ {
		cond := relErr(readNPY(t, filepath.Join(dir, fmt.Sprintf("out_params_v%d.npy", v))),
			readNPY(t, filepath.Join(dir, fmt.Sprintf("out64_params_v%d.npy", v))))
		if cond > tol/10 {
			t.Fatalf("view %d: PyTorch float32 differs from float64 by %.2g: the oracle problem is ill-conditioned; change its data", v, cond)
		}
	}
	for s := 0; s < tc.steps; s++ {
		if tc.hard {
			goY := globalYHat(runs, s, B)
			for w := range goY {
				for i := range goY[w] {
					if goY[w][i] != py.YHat[s][w][i] {
						t.Fatalf("update %d: view %d pseudo-label of row %d: Go %d, PyTorch %d", s, w, i, goY[w][i], py.YHat[s][w][i])
					}
				}
			}
		}
		for v := 0; v < V; v++ {
			for rep, rr := range runs[v] {
				st := rr.Stats[s]
				lb, la := py.LossBefore[s][v], py.LossAfter[s][v]
				if e := math.Abs(st.LossBefore-lb) / lb; e > tol {
					t.Errorf("update %d view %d replica %d: L_before Go %.9g PyTorch %.9g (rel. error %.2g)", s, v, rep, st.LossBefore, lb, e)
				}
				if e := math.Abs(st.LossAfter-la) / la; e > tol {
					t.Errorf("update %d view %d replica %d: L_after Go %.9g PyTorch %.9g (rel. error %.2g)", s, v, rep, st.LossAfter, la, e)
				}
				// h's rounding error is relative to the size of what it is computed from,
				// not to h: L_before for L_before − L_after (two float32 losses that nearly
				// cancel), lr·‖g_sup‖·‖g_student‖ for the exact h's dot product.
				for w := 0; w < V; w++ {
					gh, ph := st.H[w], py.H[s][w]
					if e := math.Abs(gh-ph) / py.HScale[s][w]; e > tol {
						t.Errorf("update %d view %d replica %d: h[%d] Go %.9g PyTorch %.9g (error %.2g)", s, v, rep, w, gh, ph, e)
					}
				}
			}
		}
	}
	for v := 0; v < V; v++ {
		pyParams := readNPY(t, filepath.Join(dir, fmt.Sprintf("out_params_v%d.npy", v)))
		pyBufs := readNPY(t, filepath.Join(dir, fmt.Sprintf("out_buffers_v%d.npy", v)))
		r0 := runs[v][0]
		if relErr(r0.Params, r0.InitParams) < 1e-3 {
			t.Errorf("view %d: the updates barely moved the parameters (%.2g); the comparison would be weak", v, relErr(r0.Params, r0.InitParams))
		}
		py64 := readNPY(t, filepath.Join(dir, fmt.Sprintf("out64_params_v%d.npy", v)))
		e := checkTensors(t, fmt.Sprintf("view %d parameters", v), r0.ProbeParams, r0.Params, pyParams, tol)
		checkTensors(t, fmt.Sprintf("view %d BatchNorm statistics", v), r0.ProbeBuffers, r0.Buffers, pyBufs, tol)
		for rep := 1; rep < tc.replicas; rep++ {
			if runs[v][rep].Checksum != r0.Checksum {
				t.Errorf("view %d: replica %d's parameters are not bit-identical to replica 0's", v, rep)
			}
		}
		t.Logf("view %d: parameters moved %.3g; norm-relative errors: Go vs PyTorch %.2g, Go vs float64 %.2g, PyTorch vs float64 %.2g",
			v, relErr(r0.Params, r0.InitParams), e, relErr(r0.Params, py64), relErr(pyParams, py64))
	}
}

// checkTensors compares Go's values of the named tensors (flat, in order) with
// PyTorch's: norm-relative error over all of them at tol, per tensor at 10·tol. It
// returns the error over all of them.
func checkTensors(t *testing.T, what string, names []*nn.Param, goVals, pyVals []float32, tol float64) float64 {
	t.Helper()
	if len(pyVals) != len(goVals) {
		t.Fatalf("%s: PyTorch returned %d values, Go has %d", what, len(pyVals), len(goVals))
	}
	off := 0
	for _, q := range names {
		n := q.W.Len()
		g, p := goVals[off:off+n], pyVals[off:off+n]
		off += n
		// Per tensor 10·tol: a tensor of 8 elements does not average its rounding out.
		if e := relErr(g, p); e > 10*tol {
			t.Errorf("%s: %s differs from PyTorch by %.2g (norm-relative)", what, q.Name, e)
		}
	}
	e := relErr(goVals, pyVals)
	if e > tol {
		t.Errorf("%s differ from PyTorch by %.2g (norm-relative)", what, e)
	}
	return e
}

func gatherRows(x []float32, dim int, rows []int) []float32 {
	out := make([]float32, len(rows)*dim)
	data.Gather(out, x, dim, rows)
	return out
}

func writeNPY(t *testing.T, dir, name string, a *data.Array) {
	t.Helper()
	if err := data.WriteNPY(filepath.Join(dir, name), a); err != nil {
		t.Fatal(err)
	}
}

func readNPY(t *testing.T, path string) []float32 {
	t.Helper()
	a, err := data.ReadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return x
}
