package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"mct/internal/list"
	"mct/nn"
)

// Config is everything that determines a run. Fields tagged `json:"-"` do not change results
// and are left out of the run's identity (RunID), so a run can be resumed with other values.
type Config struct {
	Algo     string   `json:"algo"` // supervised, cotrain, mct, mpl
	Data     string   `json:"data"` // fashion-mnist, mnist or a dataset directory
	Views    []string `json:"views"`
	Labeled  float64  `json:"labeled_fraction"`
	Balanced bool     `json:"balanced"` // equal labeled count per class instead of stratified
	Val      int      `json:"val"`      // validation examples held out of train
	Seed     uint64   `json:"seed"`

	Arch        string  `json:"arch"` // fcnn, mlp, linear
	Hidden      []int   `json:"hidden"`
	Dropout     float32 `json:"dropout"`
	Temperature float32 `json:"temperature"` // the probe's logit temperature

	Batch        int     `json:"batch"`         // unlabeled examples per update (global, all replicas)
	LabeledBatch int     `json:"labeled_batch"` // labeled examples per update; 0 = min(batch, labeled set)
	LR           float32 `json:"lr"`            // supervised (warmup) learning rate
	MCTLR        float32 `json:"mct_lr"`        // learning rate of the MCT phase; 0 = lr/8 as in the reference
	Clip         float32 `json:"clip"`          // global gradient-norm clip of the MCT steps
	WarmupEpochs int     `json:"warmup_epochs"` // upper bound; early stopping ends warmup sooner
	Patience     int     `json:"patience"`      // epochs without validation gain before stopping
	Epochs       int     `json:"epochs"`        // MCT epochs (passes over the unlabeled set)
	PseudoT      float32 `json:"pseudo_temperature"`
	Hard         bool    `json:"hard"`    // argmax pseudo-labels instead of sampling
	ExactH       bool    `json:"exact_h"` // h from the gradient dot product instead of the loss difference
	// NoFeedback drops the teacher's feedback term (step 5 keeps only g_sup): pseudo-label
	// exchange without meta-learning, the ablation that measures what the feedback adds.
	NoFeedback bool `json:"no_feedback,omitempty"`

	CotrainRounds int `json:"cotrain_rounds"`
	CotrainK      int `json:"cotrain_k"` // examples per class each view adds per round

	Out             string `json:"-"`
	CacheDir        string `json:"-"`
	Resume          bool   `json:"-"`
	CheckpointEvery int    `json:"-"` // updates between checkpoints; 0 = end of each epoch only
	Keep            int    `json:"-"` // committed checkpoints kept
	Device          string `json:"-"`
	Precision       string `json:"precision"` // GEMM precision on GPUs: bf16, tf32 or fp32
	Quiet           bool   `json:"-"`
}

// Defaults is the embedded default: Fashion-MNIST at 1% labels with two hand-crafted
// views, small enough to finish in minutes on two cores.
func Defaults() Config {
	return Config{
		Algo: "mct", Data: "fashion-mnist", Views: []string{"hog", "gabor"},
		Labeled: 0.01, Val: 5000, Seed: 1,
		Arch: "fcnn", Hidden: []int{256, 256, 256}, Temperature: 1,
		Batch: 1024, LR: 1e-3, Clip: 1,
		WarmupEpochs: 100, Patience: 10, Epochs: 3, PseudoT: 0.5,
		CotrainRounds: 5, CotrainK: 100,
		Keep: 2, Device: "auto", Precision: "bf16",
	}
}

// Validate rejects configurations that cannot run, with one line naming the flag.
func (c *Config) Validate() error {
	switch c.Algo {
	case "supervised", "cotrain", "mct", "mpl":
	default:
		return fmt.Errorf("--algo %q: expected supervised, cotrain, mct or mpl", c.Algo)
	}
	if len(c.Views) == 0 {
		return fmt.Errorf("--views: at least one view is needed")
	}
	if c.Algo == "mpl" && len(c.Views) != 1 {
		return fmt.Errorf("--algo mpl trains two probes on one view: give one --views, got %d (%s)", len(c.Views), strings.Join(c.Views, ","))
	}
	if c.Algo != "supervised" && c.Algo != "mpl" && len(c.Views) < 2 {
		return fmt.Errorf("--algo %s needs at least 2 views, got %d (%s)", c.Algo, len(c.Views), strings.Join(c.Views, ","))
	}
	seen := map[string]bool{}
	for _, v := range c.Views {
		if seen[v] {
			return fmt.Errorf("--views: %q is listed twice", v)
		}
		seen[v] = true
	}
	// Written so that NaN fails every test; ±Inf fails through finite.
	finite := func(x float32) bool { return !math.IsInf(float64(x), 0) }
	switch {
	case !(c.Labeled > 0 && c.Labeled < 1):
		return fmt.Errorf("--labeled %g: expected a fraction in (0, 1)", c.Labeled)
	case c.Val < 1:
		return fmt.Errorf("--val %d: at least 1 validation example is needed (early stopping and the choice of the best epoch run on it)", c.Val)
	case c.Batch < 2:
		return fmt.Errorf("--batch %d: expected at least 2", c.Batch)
	case c.LabeledBatch < 0 || c.LabeledBatch == 1:
		return fmt.Errorf("--labeled-batch %d: expected at least 2 (BatchNorm's batch statistics), or 0 for min(batch, labeled)", c.LabeledBatch)
	case !(c.LR > 0 && finite(c.LR)):
		return fmt.Errorf("--lr %g: expected > 0", c.LR)
	case !(c.MCTLR >= 0 && finite(c.MCTLR)):
		return fmt.Errorf("--mct-lr %g: expected > 0, or 0 for lr/8", c.MCTLR)
	case !(c.Clip >= 0 && finite(c.Clip)):
		return fmt.Errorf("--clip %g: expected > 0, or 0 for no clipping", c.Clip)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("--dropout %g: expected a probability in [0, 1)", c.Dropout)
	case !(c.Temperature > 0 && finite(c.Temperature)):
		return fmt.Errorf("--temperature %g: expected > 0", c.Temperature)
	case !(c.PseudoT > 0 && finite(c.PseudoT)):
		return fmt.Errorf("--pseudo-temperature %g: expected > 0", c.PseudoT)
	case c.Epochs < 0:
		return fmt.Errorf("--epochs %d: expected at least 0 (0: warmup only)", c.Epochs)
	case c.WarmupEpochs < 1:
		return fmt.Errorf("--warmup-epochs %d: expected at least 1", c.WarmupEpochs)
	case c.Patience < 1:
		// 0 would end warmup after its first epoch and leave MCT no epoch at all.
		return fmt.Errorf("--patience %d: expected at least 1", c.Patience)
	case c.CheckpointEvery < 0:
		return fmt.Errorf("--checkpoint-every %d: expected at least 1, or 0 for the end of each MCT epoch only", c.CheckpointEvery)
	case c.CotrainRounds < 0 || c.CotrainK < 0:
		return fmt.Errorf("--cotrain-rounds %d --cotrain-k %d: cannot be negative", c.CotrainRounds, c.CotrainK)
	case c.Precision != "bf16" && c.Precision != "tf32" && c.Precision != "fp32":
		return fmt.Errorf("--precision %q: expected bf16, tf32 or fp32", c.Precision)
	}
	if err := checkDevice(c.Device); err != nil && c.Device != "cuda" {
		return err // cuda may lack here and be in the mct that runs the job (a sweep's mct-cuda)
	}
	if err := nn.CheckArch(c.Arch, c.Hidden); err != nil {
		return fmt.Errorf("--arch %s --hidden %s: %v", c.Arch, list.Ints(c.Hidden), err)
	}
	if c.MCTLR == 0 {
		c.MCTLR = c.LR / 8
	}
	return nil
}

// Meta says whether the run has an MCT phase: MCT, or MPL (the same step, both probes on
// one view).
func (c Config) Meta() bool { return c.Algo == "mct" || c.Algo == "mpl" }

// mplProbes is how many probes --algo mpl trains on its one view.
const mplProbes = 2

// Probes names the run's probes, one per view index of the world layout: the views
// themselves, except under MPL, whose probes share its one view (hog#1, hog#2). Model
// files, accuracies and checksums go by these names.
func (c Config) Probes() []string {
	if c.Algo != "mpl" {
		return c.Views
	}
	names := make([]string, mplProbes)
	for i := range names {
		names[i] = c.Views[0] + probeSuffix(c, i)
	}
	return names
}

// ProbeView is the index in Views of the view probe i reads.
func (c Config) ProbeView(i int) int {
	if c.Algo == "mpl" {
		return 0
	}
	return i
}

// probeKind is what the run's probes are, in messages and plots: "views", or MPL's
// "probes" (of its one view).
func (c Config) probeKind() string {
	if c.Algo == "mpl" {
		return "probes"
	}
	return "views"
}

// probeUnit names what the world layout's view index counts, in messages: "views", or
// MPL's "probes of hog".
func (c Config) probeUnit() string {
	if c.Algo == "mpl" {
		return c.probeKind() + " of " + c.Views[0]
	}
	return c.probeKind()
}

// probeSuffix tells MPL's probes apart (their names and initial weights); "" elsewhere,
// so a view's probe is named, and seeded, by the view alone.
func probeSuffix(c Config, i int) string {
	if c.Algo != "mpl" {
		return ""
	}
	return "#" + strconv.Itoa(i+1)
}

// RunID identifies the configuration a run directory belongs to: resuming with other
// result-changing settings is refused.
func (c Config) RunID() string {
	b, _ := json.Marshal(c)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// switches are the environment variables that turn one of mct's mechanisms off or on
// (README, "Environment variables"): each takes 1 or 0, and unset or empty keeps the
// default.
var switches = []string{"MCT_CUDA_GRAPHS", "MCT_RESIDENT", "MCT_DEVICE_EXCHANGE", "MCT_CUDA_AWARE", "MCT_MPI_FUNNELED"}

// CheckEnv rejects a value of mct's environment variables that would otherwise count
// as unset without a word (MCT_CUDA_GRAPHS=no, MCT_BLAS_THREADS=four).
func CheckEnv() error {
	for _, k := range switches {
		if v := os.Getenv(k); v != "" && v != "0" && v != "1" {
			return fmt.Errorf("environment: %s=%s: expected 1 or 0 (or unset for the default)", k, v)
		}
	}
	if v := os.Getenv("MCT_BLAS_THREADS"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			return fmt.Errorf("environment: MCT_BLAS_THREADS=%s: expected a positive number of threads (or unset: cores ÷ ranks)", v)
		}
	}
	return nil
}
