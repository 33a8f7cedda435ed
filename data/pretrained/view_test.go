package pretrained

import (
	"strings"
	"testing"
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
