package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mct/ckpt"
	"mct/data"
	"mct/nn"
)

// ModelPath is where a finished run keeps a view's probe: safetensors, with PyTorch
// state_dict names; python/mct_probe.py loads it as a torch module (see README).
func ModelPath(runDir, view string) string {
	return filepath.Join(runDir, "model-"+view+".safetensors")
}

// saveModel writes the probe's parameters and BatchNorm statistics, its configuration as
// metadata, and, when the view was standardised, the column mean and std removed from its
// raw features (input.mean, input.std), so that the file alone maps raw features to logits.
func saveModel(path string, p *nn.Probe, view string, vd data.View) error {
	var ts []ckpt.Tensor
	for _, prm := range append(p.Params(), p.Buffers()...) {
		d := make([]float32, prm.W.Len())
		p.Backend().Download(d, prm.W)
		ts = append(ts, ckpt.Tensor{Name: prm.Name, Shape: prm.Shape, Data: d})
	}
	if vd.Mean != nil {
		ts = append(ts, ckpt.Tensor{Name: "input.mean", Shape: []int{vd.Dim}, Data: vd.Mean},
			ckpt.Tensor{Name: "input.std", Shape: []int{vd.Dim}, Data: vd.Std})
	}
	cfg, err := json.Marshal(p.Config())
	if err != nil {
		return err
	}
	return ckpt.WriteSafetensors(path, ts, map[string]string{"mct_view": view, "mct_probe": string(cfg)})
}

// inputNorm is the column mean and std removed from a view's raw features before its
// probe saw them; nil slices when its model file names none (a file from before mct
// wrote them, or a view of raw features).
type inputNorm struct{ mean, std []float32 }

// loadModel reads a probe written by a finished run onto the backend, and the
// standardisation its inputs had.
func loadModel(be nn.Backend, path string) (*nn.Probe, inputNorm, error) {
	var in inputNorm
	ts, meta, err := ckpt.ReadSafetensors(path)
	if err != nil {
		return nil, in, err
	}
	var cfg nn.Config
	if err := json.Unmarshal([]byte(meta["mct_probe"]), &cfg); err != nil {
		return nil, in, fmt.Errorf("%s: metadata mct_probe is missing or malformed: not a probe written by mct train", path)
	}
	p, err := nn.NewProbe(be, cfg, 0)
	if err != nil {
		return nil, in, fmt.Errorf("%s: %w", path, err)
	}
	byName := map[string]ckpt.Tensor{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	for _, prm := range append(p.Params(), p.Buffers()...) {
		t, ok := byName[prm.Name]
		if !ok || len(t.Data) != prm.W.Len() {
			return nil, in, fmt.Errorf("%s: tensor %s is missing or has %d values, want %d", path, prm.Name, len(t.Data), prm.W.Len())
		}
		be.Upload(prm.W, t.Data)
	}
	mean, hasMean := byName["input.mean"]
	std, hasStd := byName["input.std"]
	if hasMean != hasStd || hasMean && (len(mean.Data) != cfg.In || len(std.Data) != cfg.In) {
		return nil, in, fmt.Errorf("%s: input.mean and input.std must both be there with %d values each, or neither", path, cfg.In)
	}
	if hasMean {
		in = inputNorm{mean.Data, std.Data}
	}
	return p, in, nil
}

// loadRunModel loads the model file of a finished run's probe v, checked against the
// parameter checksum summary.json recorded for it.
func loadRunModel(be nn.Backend, runDir string, s *Summary, v string) (*nn.Probe, inputNorm, error) {
	path := ModelPath(runDir, v)
	p, in, err := loadModel(be, path)
	if err != nil {
		return nil, in, err
	}
	if want := s.ParamChecksum[v]; want != "" && p.Checksum() != want {
		return nil, in, fmt.Errorf("%s: its parameters are not those summary.json's param_checksum records for %s: the file is damaged or from another run", path, v)
	}
	return p, in, nil
}

// asTrained is x, rows of view vd standardised by vd's own statistics, standardised as
// the probe's training data were (in) instead: another dataset directory has other
// statistics. x itself when they agree, or when the model file names none.
func asTrained(x []float32, vd data.View, in inputNorm) []float32 {
	if in.mean == nil || slices.Equal(vd.Mean, in.mean) && slices.Equal(vd.Std, in.std) {
		return x
	}
	out := make([]float32, len(x))
	for i, v := range x {
		j := i % vd.Dim
		raw := float64(v)
		if vd.Mean != nil {
			raw = raw*float64(vd.Std[j]) + float64(vd.Mean[j])
		}
		out[i] = float32((raw - float64(in.mean[j])) / float64(in.std[j]))
	}
	return out
}

// Predictions are a finished run's logits on a dataset's test split, or on new examples.
type Predictions struct {
	Views   []string    // the probes' names (Config.Probes)
	Logits  [][]float32 // per view, N×Classes
	Labels  []int32     // the test labels; nil for new examples (PredictFeatures)
	Classes int
}

// ReadSummary reads the summary.json of a finished run.
func ReadSummary(runDir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(runDir, "summary.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a finished run (no summary.json): %w", runDir, err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s/summary.json: %w", runDir, err)
	}
	return &s, nil
}

// Predict loads a finished run's probes and runs them on the test split of spec (the
// run's own data when empty). Another dataset's features are standardised as the run's
// were (its model files name how), not by that dataset's own statistics.
func Predict(runDir, spec, cacheDir string) (*Predictions, error) {
	s, err := ReadSummary(runDir)
	if err != nil {
		return nil, err
	}
	if spec == "" {
		// data_dir finds the run's dataset directory from anywhere; where it is gone (the
		// project moved, its data with it), config.data as given to train, from here.
		spec = s.Config.Data
		if _, err := os.Stat(s.DataDir); s.DataDir != "" && err == nil {
			spec = s.DataDir
		}
	}
	ds, err := data.Open(spec, s.Config.Views, data.Options{CacheDir: cacheDir})
	if err != nil {
		return nil, err
	}
	be := nn.NewCPU()
	out := &Predictions{Views: s.Views, Labels: ds.TestLabels, Classes: ds.Classes}
	for i, v := range s.Views {
		p, in, err := loadRunModel(be, runDir, s, v)
		if err != nil {
			return nil, err
		}
		vd := ds.Views[s.Config.ProbeView(i)]
		if p.Config().In != vd.Dim || p.Config().Classes != ds.Classes {
			return nil, fmt.Errorf("view %s: the probe expects %d features and %d classes, the data has %d and %d",
				v, p.Config().In, p.Config().Classes, vd.Dim, ds.Classes)
		}
		out.Logits = append(out.Logits, probeLogits(be, p, asTrained(vd.Test, vd, in), vd.Dim))
	}
	return out, nil
}

// PredictFeatures runs a finished run's probes on new examples: files maps each of the
// run's views to an NPY matrix of its raw features (float32, float16 or float64, rows
// aligned across views), as `mct data import` takes them; they are standardised as the
// run's training data were. The Predictions have no Labels.
func PredictFeatures(runDir string, files map[string]string) (*Predictions, error) {
	s, err := ReadSummary(runDir)
	if err != nil {
		return nil, err
	}
	for v := range files {
		if !slices.Contains(s.Config.Views, v) {
			return nil, fmt.Errorf("--features %s=…: %s has no view %s (its views: %s)", v, runDir, v, strings.Join(s.Config.Views, ", "))
		}
	}
	raw := make([][]float32, len(s.Config.Views))
	rows, dims := -1, make([]int, len(s.Config.Views))
	for i, v := range s.Config.Views {
		file, ok := files[v]
		if !ok {
			return nil, fmt.Errorf("--features: no file for view %s: give --features %s=FILE.npy for each of the run's views (%s)", v, v, strings.Join(s.Config.Views, ", "))
		}
		x, n, d, err := data.ReadFeatures(file)
		if err != nil {
			return nil, err
		}
		if rows >= 0 && n != rows {
			return nil, fmt.Errorf("%s: %d rows, but %s has %d: row i of every view's file must be the same example", file, n, files[s.Config.Views[0]], rows)
		}
		raw[i], rows, dims[i] = x, n, d
	}
	be := nn.NewCPU()
	out := &Predictions{Views: s.Views}
	for i, v := range s.Views {
		path := ModelPath(runDir, v)
		p, in, err := loadRunModel(be, runDir, s, v)
		if err != nil {
			return nil, err
		}
		k := s.Config.ProbeView(i)
		file, dim := files[s.Config.Views[k]], dims[k]
		if p.Config().In != dim {
			return nil, fmt.Errorf("%s: %d features per row, the probe of view %s takes %d", file, dim, s.Config.Views[k], p.Config().In)
		}
		if in.mean == nil {
			return nil, fmt.Errorf("%s does not record its inputs' standardisation (an older mct wrote it): import the features with `mct data import` and use mct predict --data DIR", path)
		}
		out.Classes = p.Config().Classes
		out.Logits = append(out.Logits, probeLogits(be, p, asTrained(raw[k], data.View{Dim: dim}, in), dim))
	}
	return out, nil
}

// probeLogits runs probe p in eval mode on x, rows of dim features standardised as its
// training data were, in chunks of evalChunk rows.
func probeLogits(be nn.Backend, p *nn.Probe, x []float32, dim int) []float32 {
	r := &rank{be: be, probe: p, vd: data.View{Dim: dim, Test: x}, dim: dim, C: p.Config().Classes,
		tapeE: p.NewTape(evalChunk, false), xL: be.Alloc(evalChunk * dim), host: make([]float32, evalChunk*dim)}
	return r.logits(allRows(len(x)/dim), true)
}

// Accuracy of each view and of the ensemble (sum of logits, added in view order). The
// trainer's evaluation (rank.evaluate) computes its accuracies here too.
func (p *Predictions) Accuracy() Accuracies {
	n, C := len(p.Labels), p.Classes
	correct := make([]int, len(p.Logits))
	var ens int
	pred := p.Ensemble()
	for i, y := range p.Labels {
		for v, z := range p.Logits {
			if argmax(z[i*C:(i+1)*C]) == int(y) {
				correct[v]++
			}
		}
		if pred[i] == y {
			ens++
		}
	}
	acc := Accuracies{PerView: map[string]float64{}, Ensemble: float64(ens) / float64(n), SharedErrors: p.SharedErrors()}
	for v, c := range correct {
		acc.PerView[p.Views[v]] = float64(c) / float64(n)
	}
	return acc
}

// Ensemble is the ensemble's class of every row: the argmax of the views' summed logits.
func (p *Predictions) Ensemble() []int32 {
	C := p.Classes
	sum := p.summed()
	pred := make([]int32, len(sum)/C)
	for i := range pred {
		pred[i] = int32(argmax(sum[i*C : (i+1)*C]))
	}
	return pred
}

// Probabilities are the ensemble's class probabilities of every row, N×Classes: the
// softmax of the views' summed logits, whose argmax is Ensemble's class.
func (p *Predictions) Probabilities() []float32 {
	C := p.Classes
	sum := p.summed()
	for i := 0; i < len(sum); i += C {
		row := sum[i : i+C]
		top := row[argmax(row)]
		if math.IsInf(float64(top), 1) {
			// The sum overflowed float32 (each view's logit finite): the classes whose
			// sum is infinite share the probability (exp(z-top) would be NaN for them).
			inf := 0
			for _, z := range row {
				if z == top {
					inf++
				}
			}
			for k, z := range row {
				row[k] = 0
				if z == top {
					row[k] = 1 / float32(inf)
				}
			}
			continue
		}
		var total float64
		for _, z := range row {
			total += math.Exp(float64(z - top))
		}
		for k, z := range row {
			row[k] = float32(math.Exp(float64(z-top)) / total)
		}
	}
	return sum
}

// summed is the views' logits added row by row, in view order (N×Classes).
func (p *Predictions) summed() []float32 {
	sum := make([]float32, len(p.Logits[0]))
	for _, z := range p.Logits {
		for k, x := range z {
			sum[k] += x
		}
	}
	return sum
}
