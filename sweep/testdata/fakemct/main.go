// Command fakemct stands in for the mct binary in the sweep and SLURM tests,
// so that the job scripts, job arrays and the requeue path are proven before
// the real trainer exists (the tests take the binary from $MCT_BIN, which
// can name the real ./mct instead).
//
// It behaves like `mct train` where the scripts can tell: every rank of an
// mpirun/srun launch (rank from the launcher's environment) trains "its view"
// by a hash chain of --steps steps, so the final parameters are a pure
// function of the configuration; SIGUSR1 or SIGTERM makes every rank write a
// checkpoint at the next step boundary and exit 0; --resume continues from
// the checkpoints; rank 0 writes summary.json, with one checksum per view,
// only when all ranks finished. `sweep run` and `sweep collect` call package
// sweep as main.go does.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"mct/sweep"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: fakemct train|sweep ..."))
	}
	var err error
	switch os.Args[1] {
	case "train":
		err = train(os.Args[2:])
	case "sweep":
		err = sweepCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if errors.Is(err, sweep.ErrPreempted) {
		fmt.Fprintln(os.Stderr, "fakemct:", err)
		os.Exit(sweep.ExitPreempted)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fakemct:", err)
	os.Exit(1)
}

func sweepCmd(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: fakemct sweep run GRID --index N | sweep collect DIR")
	}
	switch args[0] {
	case "run":
		fs := flag.NewFlagSet("sweep run", flag.ContinueOnError)
		index := fs.Int("index", -1, "combination")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		return sweep.Run(args[1], *index, self)
	case "collect":
		c, err := sweep.Collect(args[1])
		if err != nil {
			return err
		}
		fmt.Print(c.Markdown)
		return nil
	}
	return fmt.Errorf("unknown sweep command %q", args[0])
}

// world reads this process's rank and the world size from the launcher.
func world() (rank, size int) {
	for _, pair := range [][2]string{
		{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
		{"PMI_RANK", "PMI_SIZE"},
		{"SLURM_PROCID", "SLURM_STEP_NUM_TASKS"}, // set for srun steps only
	} {
		r, err1 := strconv.Atoi(os.Getenv(pair[0]))
		s, err2 := strconv.Atoi(os.Getenv(pair[1]))
		if err1 == nil && err2 == nil {
			return r, s
		}
	}
	return 0, 1
}

type checkpoint struct {
	Step  int    `json:"step"`
	State string `json:"state"`
}

func train(args []string) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	out := fs.String("out", "", "run directory")
	resume := fs.Bool("resume", false, "continue from the checkpoints in --out")
	algo := fs.String("algo", "mct", "algorithm")
	viewList := fs.String("views", "a,b", "comma-separated views")
	frac := fs.Float64("labeled-fraction", 0.1, "labeled fraction")
	seed := fs.Int64("seed", 1, "seed")
	lr := fs.Float64("lr", 1e-3, "learning rate")
	steps := fs.Int("steps", 20, "steps")
	stepMS := fs.Int("step-ms", 50, "milliseconds per step (timing only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("train: --out is required")
	}
	views := strings.Split(*viewList, ",")
	rank, size := world()
	// Alone, one process trains every view, as mct does without mpirun.
	locals := []int{rank}
	if size == 1 {
		size, locals = len(views), nil
		for r := range views {
			locals = append(locals, r)
		}
	}
	if size%len(views) != 0 {
		return fmt.Errorf("train: world size %d not divisible by %d views", size, len(views))
	}

	var stop atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
	go func() {
		<-sigs
		stop.Store(true)
	}()

	for _, d := range []string{"ckpt", "final"} {
		if err := os.MkdirAll(filepath.Join(*out, d), 0o755); err != nil {
			return err
		}
	}
	// Like mct train, refuse a run directory that holds a run of another configuration
	// (what changes results; --step-ms does not).
	id := fmt.Sprintf("%s|%s|%g|%d|%g|%d", *algo, *viewList, *frac, *seed, *lr, *steps)
	if old, err := os.ReadFile(filepath.Join(*out, "config")); err == nil && string(old) != id {
		return fmt.Errorf("train: run directory %s holds a run of another configuration (%s, this run %s)", *out, old, id)
	}
	if rank == 0 {
		if err := writeAtomic(filepath.Join(*out, "config"), []byte(id)); err != nil {
			return err
		}
	}
	states := make([][]byte, len(locals))
	step := 0
	for i, r := range locals {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%g|%d|%g", *algo, views[r%len(views)], *frac, *seed, *lr)))
		states[i] = h[:]
		ckptPath := filepath.Join(*out, "ckpt", fmt.Sprintf("rank%d.json", r))
		raw, err := os.ReadFile(ckptPath)
		if err != nil {
			continue
		}
		if !*resume {
			return fmt.Errorf("train: %s holds a checkpoint: pass --resume or use a new --out", *out)
		}
		var c checkpoint
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("train: %s: corrupt checkpoint: %w", ckptPath, err)
		}
		if states[i], err = hex.DecodeString(c.State); err != nil {
			return fmt.Errorf("train: %s: corrupt checkpoint: %w", ckptPath, err)
		}
		step = c.Step
		f, err := os.OpenFile(filepath.Join(*out, fmt.Sprintf("resumed.rank%d", r)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintln(f, step)
		f.Close()
		fmt.Fprintf(os.Stderr, "rank %d: resumed at step %d\n", r, step)
	}
	// A rank that finished before its peers were stopped keeps its result.
	if raw, err := os.ReadFile(filepath.Join(*out, "final", fmt.Sprintf("rank%d", locals[0]))); err == nil && len(locals) == 1 {
		step = *steps
		if states[0], err = hex.DecodeString(string(raw)); err != nil {
			return err
		}
	}
	for ; step < *steps; step++ {
		if stop.Load() {
			for i, r := range locals {
				b, _ := json.Marshal(checkpoint{Step: step, State: hex.EncodeToString(states[i])})
				if err := writeAtomic(filepath.Join(*out, "ckpt", fmt.Sprintf("rank%d.json", r)), b); err != nil {
					return err
				}
			}
			fmt.Fprintf(os.Stderr, "ranks %v: checkpointed at step %d; resume with --resume --out %s\n", locals, step, *out)
			return nil
		}
		time.Sleep(time.Duration(*stepMS) * time.Millisecond)
		var k [8]byte
		binary.LittleEndian.PutUint64(k[:], uint64(step))
		for i := range states {
			next := sha256.Sum256(append(append([]byte(nil), states[i]...), k[:]...))
			states[i] = next[:]
		}
	}
	for i, r := range locals {
		if err := writeAtomic(filepath.Join(*out, "final", fmt.Sprintf("rank%d", r)), []byte(hex.EncodeToString(states[i]))); err != nil {
			return err
		}
	}
	if locals[0] != 0 {
		return nil
	}
	checksums := map[string]string{}
	for r := 0; r < len(views); r++ {
		p := filepath.Join(*out, "final", fmt.Sprintf("rank%d", r))
		var raw []byte
		var err error
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if raw, err = os.ReadFile(p); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("train: rank %d never finished: %w", r, err)
		}
		checksums[views[r]] = string(raw)
	}
	// Accuracies are a simple function of the configuration so that tests
	// can check the collected means and deviations exactly.
	ens := 0.5 + 0.3**frac + 0.01*float64(*seed%10) + map[string]float64{"supervised": 0, "cotrain": 0.02, "mct": 0.04}[*algo]
	per := map[string]float64{}
	for i, v := range views {
		per[v] = ens - 0.02*float64(i+1)
	}
	acc := map[string]any{"ensemble": ens, "per_view": per}
	summary := map[string]any{
		"algo": *algo, "views": views, "labeled_fraction": *frac, "seed": *seed,
		"test_accuracy": acc, "val_accuracy": acc, "updates": *steps, "wall_seconds": 0.1,
		"examples_per_second_per_view": 1000.0, "param_checksum": checksums,
		"config": map[string]any{"algo": *algo, "views": views, "labeled_fraction": *frac, "seed": *seed, "lr": *lr, "steps": *steps},
	}
	b, err := json.MarshalIndent(summary, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(*out, sweep.SummaryFile), b)
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
