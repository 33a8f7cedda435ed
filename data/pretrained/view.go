package pretrained

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"mct/data"
	"mct/internal/atomicfile"
)

// View families "mobilenet_v2" and "inception_v3": specs are
// NETWORK[:LAYER][@SIZE], e.g. mobilenet_v2:block_13_expand_relu@96. The
// defaults are the layers that gave the best linear-probe accuracy on
// Fashion-MNIST (see doc.go) at 96 px.
func init() {
	for name := range Networks {
		d := defaultView[name]
		data.RegisterFamily(data.FamilyInfo{Name: name, Defaults: DefaultLayers[name] + "@" + strconv.Itoa(DefaultSize),
			About: fmt.Sprintf("%s of npm %s@%s run up to LAYER on SIZE×SIZE px, averaged over positions (%d values by default; LAYER@SIZE, any layer before the head)",
				d.title, Package, Version, d.width)}, family(name))
	}
}

// defaultView names each network for `mct data views` and gives the width of its
// default layer (TestFamilyInfos checks it against the model).
var defaultView = map[string]struct {
	title string
	width int
}{
	"mobilenet_v2": {"MobileNetV2", 576},
	"inception_v3": {"InceptionV3", 768},
}

// DefaultLayers are the layers a spec without one uses.
var DefaultLayers = map[string]string{
	"mobilenet_v2": "block_13_expand_relu",
	"inception_v3": "mixed7",
}

// DefaultSize is the input resolution a spec without @SIZE uses.
const DefaultSize = 96

// ChunkImages is how many images are embedded between two checkpoints of a
// view build: about half a minute of InceptionV3 on two cores.
const ChunkImages = 2048

var (
	cacheMu  sync.Mutex
	cacheDir string
)

// SetCacheDir sets where the nsfwjs package and partial view builds are kept
// (the CLI's --cache). Empty restores the default.
func SetCacheDir(dir string) {
	cacheMu.Lock()
	cacheDir = dir
	cacheMu.Unlock()
}

// CacheDir returns the directory SetCacheDir chose, else the one the data
// package uses: $MCT_CACHE_DIR, else $XDG_CACHE_HOME/mct, else ~/.cache/mct.
func CacheDir() (string, error) {
	cacheMu.Lock()
	d := cacheDir
	cacheMu.Unlock()
	return data.CacheDir(d)
}

// ParseSpec splits the arguments of a view spec ("LAYER@SIZE", either part
// optional) for network.
func ParseSpec(network, args string) (layer string, size int, err error) {
	layer, sz, hasSize := strings.Cut(args, "@")
	if layer == "" {
		layer = DefaultLayers[network]
	}
	size = DefaultSize
	if hasSize {
		size, err = strconv.Atoi(sz)
		if err != nil || size < 32 || size > 1024 {
			return "", 0, fmt.Errorf("size %q: want an integer from 32 to 1024 (pixels)", sz)
		}
	}
	return layer, size, nil
}

func family(network string) data.Family {
	return func(ctx context.Context, args string, im data.Images, progress func(done, total int)) (data.Features, error) {
		layer, size, err := ParseSpec(network, args)
		if err != nil {
			return data.Features{}, err
		}
		cache, err := CacheDir()
		if err != nil {
			return data.Features{}, err
		}
		m, err := Load(cache, network)
		if err != nil {
			return data.Features{}, err
		}
		net, err := m.Compile(layer, size)
		if err != nil {
			return data.Features{}, err
		}
		feats, err := net.EmbedImages(ctx, im, filepath.Join(cache, "partial"), progress)
		if err != nil {
			return data.Features{}, err
		}
		return data.Features{Dim: net.OutC, Data: feats, Params: map[string]any{
			"package":        Package + "@" + Version,
			"network":        network,
			"layer":          layer,
			"input_size":     size,
			"weights_sha256": m.WeightsSHA256,
			"preprocessing":  "grey/255 to 3 channels, bilinear resize (align_corners) as nsfwjs",
			"pooling":        "global average over the layer's spatial positions",
		}}, nil
	}
}

// EmbedImages embeds grey images with Preprocess and Embed, ChunkImages at a
// time. Each finished chunk is written under partialDir (in a folder named by
// a hash of the network, layer, size, weights and images), so an interrupted
// build resumes where it stopped; the folder is removed once all chunks are
// done. progress (may be nil) is called after every batch. Once ctx is done it
// returns an error wrapping ctx's cause before the next chunk it would compute,
// the chunks done so far kept for the next call.
func (nt *Net) EmbedImages(ctx context.Context, im data.Images, partialDir string, progress func(done, total int)) ([]float32, error) {
	dim := nt.OutC
	out := make([]float32, im.N*dim)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00%d\x00%d\x00%d\x00", nt.weightsSHA256, nt.Target, nt.Size, im.N, im.H, im.W, ChunkImages)
	h.Write(im.Pix)
	dir := filepath.Join(partialDir, "pretrained-"+hex.EncodeToString(h.Sum(nil))[:24])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("partial view directory: %w", err)
	}
	done, told := 0, true
	for c0 := 0; c0 < im.N; c0 += ChunkImages {
		c1 := min(c0+ChunkImages, im.N)
		chunk := out[c0*dim : c1*dim]
		path := filepath.Join(dir, fmt.Sprintf("chunk-%06d.f32", c0/ChunkImages))
		if readChunk(path, chunk) {
			done += c1 - c0
			told = false
			continue
		}
		if !told && progress != nil {
			// Chunks read back are told at once, before the first one computed, so
			// that the progress's first count is theirs and its rate (ETA) is the
			// computed chunks' alone.
			progress(done, im.N)
			told = true
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stopped after %d of %d images (kept, the next build continues from them): %w", done, im.N, context.Cause(ctx))
		}
		for b0 := c0; b0 < c1; b0 += EmbedBatch {
			b1 := min(b0+EmbedBatch, c1)
			x := Preprocess(im.Pix[b0*im.H*im.W:b1*im.H*im.W], b1-b0, im.H, im.W, nt.Size)
			copy(out[b0*dim:b1*dim], nt.Embed(x, b1-b0))
			done += b1 - b0
			if progress != nil {
				progress(done, im.N)
			}
		}
		if err := writeChunk(path, chunk); err != nil {
			return nil, err
		}
	}
	if !told && progress != nil {
		progress(done, im.N)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("remove partial view: %w", err)
	}
	return out, nil
}

// readChunk fills dst from a finished chunk file; a missing or wrong-sized
// file (never a complete one: chunks are renamed into place) means recompute.
func readChunk(path string, dst []float32) bool {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 4*len(dst) {
		return false
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return true
}

func writeChunk(path string, v []float32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("partial view: %w", err)
	}
	return nil
}
