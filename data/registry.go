package data

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Images is a stack of N grey images of H×W pixels, row-major, 0 = black.
type Images struct {
	N, H, W int
	Pix     []uint8
}

// Image returns the pixels of image i.
func (im Images) Image(i int) []uint8 { return im.Pix[i*im.H*im.W : (i+1)*im.H*im.W] }

// Features is what a Family computes: N rows of Dim values, row-major, plus the
// parameters that determine them (recorded in the manifest so a view can be rebuilt).
type Features struct {
	Dim    int
	Data   []float32
	Params map[string]any
}

// Family computes a view from raw images. args is the part of the view spec after
// the first ':' (empty if none): for "gabor:scales=3" it is "scales=3", for
// "mobilenet_v2:block_13_expand_relu@96" it is "block_13_expand_relu@96".
// A Family must be deterministic (same args and images → same bits, whatever
// the number of cores) and should call progress(done, N) as images finish.
// It is called once with the train and test images stacked, so features never
// depend on which split an image is in. Its errors need not name the view: the
// caller prefixes them with `view "SPEC": `. A family that runs for minutes (the
// pretrained networks) returns ctx's error at its next committed piece of work once
// ctx is done, so that a signalled job stops in time; one of seconds may ignore ctx.
type Family func(ctx context.Context, args string, imgs Images, progress func(done, total int)) (Features, error)

// FamilyInfo describes a family to users (`mct data views`).
type FamilyInfo struct {
	Name string
	// Defaults are the arguments a spec without any builds with, written as a spec
	// writes them ("cell=4,block=2,bins=9"): NAME:Defaults is the same view as NAME.
	Defaults string
	// About says in one line what the features are and how many there are of them.
	About string
}

// registered is a family and its description.
type registered struct {
	info  FamilyInfo
	build Family
}

var (
	familiesMu sync.RWMutex
	families   = map[string]registered{}
)

// RegisterFamily makes a view family available to Open and Build under info.Name.
// Packages call it from init; a duplicate or malformed name panics.
func RegisterFamily(info FamilyInfo, f Family) {
	familiesMu.Lock()
	defer familiesMu.Unlock()
	name := info.Name
	if name == "" || strings.ContainsAny(name, ":@/ ") || f == nil || info.About == "" {
		panic(fmt.Sprintf("data.RegisterFamily: bad name %q, no description or nil family", name))
	}
	if _, dup := families[name]; dup {
		panic(fmt.Sprintf("data.RegisterFamily: family %q registered twice", name))
	}
	families[name] = registered{info, f}
}

// Families lists the registered family names, sorted.
func Families() []string {
	familiesMu.RLock()
	defer familiesMu.RUnlock()
	return slices.Sorted(maps.Keys(families))
}

// FamilyInfos describes the registered families, sorted by name.
func FamilyInfos() []FamilyInfo {
	var out []FamilyInfo
	familiesMu.RLock()
	defer familiesMu.RUnlock()
	for _, name := range slices.Sorted(maps.Keys(families)) {
		out = append(out, families[name].info)
	}
	return out
}

// lookupFamily splits a view spec into its family and arguments.
func lookupFamily(spec string) (Family, string, error) {
	name, args, _ := strings.Cut(spec, ":")
	familiesMu.RLock()
	f := families[name].build
	familiesMu.RUnlock()
	if f == nil {
		return nil, "", fmt.Errorf("view %q: unknown family %q (known: %s)", spec, name, strings.Join(Families(), ", "))
	}
	return f, args, nil
}

// SpecArgs parses family arguments of the form "key=value,key=value". Families
// read values with Int and Uint64 and then call Done, which rejects keys
// nobody asked for (a typo must not silently build the default view).
type SpecArgs struct {
	kv   map[string]string
	used map[string]bool
}

// ParseSpecArgs parses a family's args.
func ParseSpecArgs(args string) (*SpecArgs, error) {
	a := &SpecArgs{kv: map[string]string{}, used: map[string]bool{}}
	if args == "" {
		return a, nil
	}
	for _, f := range strings.Split(args, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("argument %q: want key=value", f)
		}
		if _, dup := a.kv[k]; dup {
			return nil, fmt.Errorf("argument %q given twice", k)
		}
		a.kv[k] = v
	}
	return a, nil
}

// Int returns the integer argument key, def if absent; it must lie in [lo, hi].
func (a *SpecArgs) Int(key string, def, lo, hi int) (int, error) {
	a.used[key] = true
	s, ok := a.kv[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s=%s: want an integer in [%d, %d]", key, s, lo, hi)
	}
	return v, nil
}

// Uint64 returns the unsigned argument key (a seed), def if absent.
func (a *SpecArgs) Uint64(key string, def uint64) (uint64, error) {
	a.used[key] = true
	s, ok := a.kv[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%s: want a non-negative integer", key, s)
	}
	return v, nil
}

// Done reports an argument that no accessor asked for.
func (a *SpecArgs) Done() error {
	var known, unknown []string
	for k := range a.used {
		known = append(known, k)
	}
	for k := range a.kv {
		if !a.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		sort.Strings(known)
		return fmt.Errorf("unknown argument %q (this family takes: %s)", unknown[0], strings.Join(known, ", "))
	}
	return nil
}

// ParallelRows calls fn(i, scratch) for every i in [0, n) on all cores, where
// scratch is a per-goroutine value from newScratch (buffers reused across rows).
// fn must only write row i of its output, which keeps the result independent of
// the number of cores. progress (may be nil) is called from one goroutine at a
// time with the rows done so far.
func ParallelRows[S any](n int, newScratch func() S, fn func(i int, s S), progress func(done, total int)) {
	workers := max(1, runtime.GOMAXPROCS(0))
	const chunk = 64
	var next, done atomic.Int64
	var mu sync.Mutex
	reported := 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			s := newScratch()
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= n {
					return
				}
				hi := min(lo+chunk, n)
				for i := lo; i < hi; i++ {
					fn(i, s)
				}
				d := done.Add(int64(hi - lo))
				if progress != nil {
					mu.Lock()
					if int(d) > reported { // chunks finish out of order; report only forward
						reported = int(d)
						progress(reported, n)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}
