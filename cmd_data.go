package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"mct/data"
	"mct/data/pretrained" // registers the mobilenet_v2 and inception_v3 view families
	"mct/internal/list"
	"mct/train"
)

func cmdData(args []string) error {
	usage := `usage: mct data <build|import|info|views> [flags]

  build   build views of a built-in dataset (or select views of a directory) into a dataset directory
          mct data build --data fashion-mnist --views hog,gabor --out data/fmnist
  import  make a dataset directory from NumPy files (your own embeddings)
          mct data import --view dino=train_dino.npy,test_dino.npy --view clip=train_clip.npy,test_clip.npy \
                          --labels train_y.npy,test_y.npy --classes 10 --out data/mine
  info    describe a dataset directory: mct data info DIR
  views   list the view families that can be built, their parameters and defaults
`
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("expected a subcommand")
	}
	if isHelp(args[0]) {
		fmt.Print(usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "build":
		fs := newFlags("data build", `usage: mct data build --out DIR [--data NAME] [--views SPEC,...]

Builds views of a built-in dataset (or selects views of a dataset directory) into a new
dataset directory: manifest.json and one .npy matrix per view and split.`)
		spec := fs.String("data", "fashion-mnist", "fashion-mnist, mnist or a dataset directory")
		views := fs.String("views", strings.Join(train.Defaults().Views, ","), "comma-separated view specs")
		out := fs.String("out", "", "dataset directory to create (must not exist)")
		cache := fs.String("cache", "", cacheHelp)
		compress := fs.Bool("compress", false, "store matrices as .npy.zst where it saves a quarter")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *out == "" {
			return fmt.Errorf("build: --out DIR is required")
		}
		if *cache != "" {
			pretrained.SetCacheDir(*cache)
		}
		if err := data.Build(*spec, list.Strings(*views), *out, data.Options{CacheDir: *cache, Compress: *compress,
			Progress: train.BuildProgress(os.Stderr)}); err != nil {
			return err
		}
		wroteDataset("build", *out)
		return nil
	case "import":
		fs := newFlags("data import", `usage: mct data import --view NAME=TRAIN.npy,TEST.npy [--view ...] --labels TRAIN.npy,TEST.npy --classes N --out DIR

Makes a dataset directory from your own embeddings: one view per pretrained model,
row i of every file the same example. Features: (N, D) float32, float16 or float64
(also .npy.zst), standardised with the train split's statistics. Labels: (N,) integers.
Train rows whose class nobody knows are labelled -1: they only ever feed the unlabeled
pool, and mct train's --labeled is then a fraction of the known labels (with --val taken
from the rest of them). Test labels must all be known.

  mct data import --view clip=clip-train.npy,clip-test.npy --view dino=dino-train.npy,dino-test.npy \
      --labels y-train.npy,y-test.npy --classes 100 --out data/mine
  mct train --data data/mine --views clip,dino --labeled 0.8 --val 500`)
		views := map[string][2]string{}
		fs.Func("view", "NAME=TRAIN.npy,TEST.npy (repeat per view)", func(s string) error {
			name, files, ok := strings.Cut(s, "=")
			parts := list.Strings(files)
			if !ok || name == "" || len(parts) != 2 {
				return errors.New("expected NAME=TRAIN.npy,TEST.npy")
			}
			if _, dup := views[name]; dup {
				return fmt.Errorf("view %s given twice", name)
			}
			views[name] = [2]string{parts[0], parts[1]}
			return nil
		})
		labels := fs.String("labels", "", "TRAIN_LABELS.npy,TEST_LABELS.npy: integers in [0, classes); -1 in train marks an example nobody labelled")
		classes := fs.Int("classes", 0, "number of classes")
		out := fs.String("out", "", "dataset directory to create (must not exist)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		l := list.Strings(*labels)
		if len(l) != 2 || *out == "" || *classes < 2 {
			return fmt.Errorf("import: need --labels TRAIN.npy,TEST.npy, --classes N (≥ 2) and --out DIR")
		}
		if err := data.Import(views, [2]string{l[0], l[1]}, *classes, *out); err != nil {
			return err
		}
		wroteDataset("import", *out)
		return nil
	case "info":
		if len(args) == 2 && isHelp(args[1]) {
			fmt.Println("usage: mct data info DIR\n\nDescribes a dataset directory: its views, splits, classes and provenance.")
			return flag.ErrHelp
		}
		if len(args) != 2 {
			return fmt.Errorf("info: expected one dataset directory")
		}
		s, err := data.Describe(args[1])
		if err != nil {
			return err
		}
		fmt.Print(s)
		return nil
	case "views":
		fmt.Println("A view spec is FAMILY or FAMILY:ARGS, e.g. hog:cell=7 or mobilenet_v2:block_16_project@128;")
		fmt.Println("FAMILY alone builds with the defaults below. Built views are cached (--cache).")
		fmt.Println()
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "family\tdefaults\twhat")
		for _, f := range data.FamilyInfos() {
			fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, cmp.Or(f.Defaults, "-"), f.About)
		}
		return w.Flush()
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown data command %q", args[0])
}

// wroteDataset tells the user where the dataset directory is and how to use it.
func wroteDataset(sub, dir string) {
	fmt.Fprintf(os.Stderr, "mct data %s: wrote %s (mct data info %s describes it; mct train --data %s trains on it)\n", sub, dir, dir, dir)
}
