package pretrained

import (
	"fmt"
	"strings"
	"testing"

	"mct/data"
)

// TestParseSpec: either part of LAYER@SIZE may be left out; a bad size is refused
// without naming the view (data's view build prefixes `view "SPEC": `).
func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		network, args, layer string
		size                 int
	}{
		{"mobilenet_v2", "", "block_13_expand_relu", DefaultSize},
		{"inception_v3", "@75", "mixed7", 75},
		{"mobilenet_v2", "block_6_expand_relu", "block_6_expand_relu", DefaultSize},
		{"inception_v3", "mixed5@128", "mixed5", 128},
	} {
		layer, size, err := ParseSpec(tc.network, tc.args)
		if err != nil || layer != tc.layer || size != tc.size {
			t.Errorf("ParseSpec(%q, %q) = %q, %d, %v; want %q, %d", tc.network, tc.args, layer, size, err, tc.layer, tc.size)
		}
	}
	for _, args := range []string{"@31", "@1025", "mixed7@x"} {
		_, _, err := ParseSpec("inception_v3", args)
		sz := args[strings.IndexByte(args, '@')+1:]
		if want := `size "` + sz + `": want an integer from 32 to 1024 (pixels)`; err == nil || err.Error() != want {
			t.Errorf("ParseSpec(inception_v3, %q): %v, want %q", args, err, want)
		}
	}
}

// TestFamilyInfos: `mct data views` gives each network's default value count, the
// width of its default layer; and the defaults it shows are the ones a bare name uses.
func TestFamilyInfos(t *testing.T) {
	cache := testCache(t)
	if _, err := EnsurePackage(cache); err != nil {
		unavailable(t, err)
	}
	var seen int
	for _, info := range data.FamilyInfos() {
		if _, ok := Networks[info.Name]; !ok {
			continue
		}
		seen++
		layer, size, err := ParseSpec(info.Name, info.Defaults)
		if err != nil || layer != DefaultLayers[info.Name] || size != DefaultSize {
			t.Errorf("%s: defaults %q parse to %s@%d (%v), a bare name builds %s@%d", info.Name, info.Defaults, layer, size, err, DefaultLayers[info.Name], DefaultSize)
		}
		m, err := Load(cache, info.Name)
		if err != nil {
			t.Fatal(err)
		}
		net, err := m.Compile(layer, size)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("(%d values by default;", net.OutC); !strings.Contains(info.About, want) {
			t.Errorf("%s: %q does not say %s", info.Name, info.About, want)
		}
	}
	if seen != len(Networks) {
		t.Errorf("%d of the %d networks are described", seen, len(Networks))
	}
}
