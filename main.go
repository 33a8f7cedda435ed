// Command mct trains classifiers with Meta Co-Training on several views of each example.
//
// Run alone it trains every view in one process; launched by mpirun or srun it trains one
// view per rank and exchanges pseudo-label logits and meta-feedback with MPI collectives.
// See README.md, or `mct help`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"mct/sweep"
	"mct/train"
)

var version = "dev" // set by the Makefile from git describe

type command struct {
	name, summary string
	run           func(args []string) error
}

func commands() []command {
	return []command{
		{"train", "train probes: supervised, co-training, Meta Pseudo Labels or Meta Co-Training (default)", cmdTrain},
		{"eval", "evaluate a finished run's probes on the test split (its own dataset's or another's)", cmdEval},
		{"predict", "write a run's ensemble predictions: a test split, or new examples' features", cmdPredict},
		{"data", "build, import or describe a dataset directory", cmdData},
		{"report", "compare runs: a Markdown table of mean ± std accuracy", cmdReport},
		{"export", "export a view's probe (safetensors) for PyTorch", cmdExport},
		{"probe", "show the CPU and BLAS kernel, GPUs, MPI library and this rank's GPU placement (each rank's under mpirun)", cmdProbe},
		{"sweep", "list, run and collect a grid of runs (SLURM job arrays)", cmdSweep},
		{"bench", "time the MCT update on random data (any device, under mpirun too)", cmdBench},
		{"version", "print the version", func([]string) error { fmt.Println("mct", version); return nil }},
	}
}

// usage prints the commands: to stdout when asked for (mct help | less), to stderr
// when the command line was wrong.
func usage(w io.Writer) {
	fmt.Fprintf(w, `mct — Meta Co-Training for HPC clusters

usage: mct <command> [flags]        (mct <command> -h, or mct help <command>, for its flags)

`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
examples:
  mct train                                   # MCT on Fashion-MNIST, 1%% labels, hog+gabor views
  mct train --algo supervised --views pixels,hog --labeled 0.01 --out runs/sup
  mct train --algo mpl --views hog --out runs/mpl  # one view's control: two probes of hog
  mpirun -np 4 ./mct train --views hog,gabor   # 2 views x 2 replicas, one rank each
`)
}

// newFlags makes a command's flag set; its -h prints help (the usage line and what the
// command does), then the flags.
func newFlags(name, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nflags:\n", strings.TrimSpace(help))
		fs.PrintDefaults()
	}
	return fs
}

// cacheHelp explains every command's --cache flag.
const cacheHelp = "cache of built views (default $MCT_CACHE_DIR, else $XDG_CACHE_HOME/mct, else ~/.cache/mct)"

// isHelp reports whether a command-line word asks for help, where a command expects an
// operand (a grid, a directory) rather than flags.
func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// parseFlags parses a command's flags quietly: -h prints the command's usage, and a bad
// flag is one error line (main prefixes the command) instead of the error plus the usage.
// A word left over is an error: the flag package stops at the first one, so the flags
// after it would otherwise be ignored without a word (mct bench typo --updates 1).
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout) // asked for: stdout, so that mct train -h | grep works
		fs.Usage()
		fs.SetOutput(os.Stderr)
	case err != nil:
		err = fmt.Errorf("%w (mct %s -h lists the flags)", err, fs.Name())
	case fs.NArg() > 0:
		err = fmt.Errorf("%w %q (flags start with --)", errExtraWord, fs.Arg(0))
	}
	return err
}

// errExtraWord is parseFlags's error for a word left over after the flags; fs.Arg(0) is
// the word.
var errExtraWord = errors.New("unexpected argument")

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	if name == "help" && len(args) > 0 && !isHelp(args[0]) { // mct help train, mct help data import: its own help
		name, args = args[0], append(args[1:], "-h")
	} else if name == "help" || isHelp(name) {
		usage(os.Stdout)
		return
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(args)
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			if errors.Is(err, sweep.ErrPreempted) {
				fmt.Fprintln(os.Stderr, "mct "+name+": "+err.Error())
				os.Exit(sweep.ExitPreempted) // sweep.sbatch requeues on this status
			}
			var reported train.Reported
			if errors.As(err, &reported) {
				os.Exit(1)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "mct "+name+": "+err.Error())
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "mct: unknown command %q (see mct help)\n", name)
	os.Exit(2)
}
