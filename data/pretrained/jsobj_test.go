package pretrained

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestExportedLiteral(t *testing.T) {
	wrap := func(lit string) []byte {
		// The browserify prelude nsfwjs ships, which contains a decoy
		// `module.exports=e()` that must not be taken for the literal.
		return []byte(`!function(e){if("object"==typeof exports&&"undefined"!=typeof module)module.exports=e();}(function(){return function e(a,n,i){}({1:[function(e,a,n){a.exports=` +
			lit + `},{}]},{},[1])(1)});`)
	}
	good := []struct {
		lit  string
		want any
	}{
		{`{a:1,b:!0,c:!1,d:.5,e:-.08,f:null}`, map[string]any{"a": 1.0, "b": true, "c": false, "d": 0.5, "e": -0.08, "f": nil}},
		{`{"q":"x\"y\\z\u0041",n_1:[1,-0,2e-3,[]],$:{}}`, map[string]any{"q": `x"y\zA`, "n_1": []any{1.0, 0.0, 0.002, []any{}}, "$": map[string]any{}}},
		{`"YWJj+/=="`, "YWJj+/=="},
		{`{ a : [ 1 , 2 ] , b : 'single' }`, map[string]any{"a": []any{1.0, 2.0}, "b": "single"}},
	}
	for _, c := range good {
		got, err := exportedLiteral(wrap(c.lit))
		if err != nil {
			t.Errorf("%s: %v", c.lit, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.lit, got, c.want)
		}
	}
	bad := []struct{ src, msg string }{
		{string(wrap(`{a:function(){return 1}}`)), `unsupported JavaScript value "function"`},
		{string(wrap(`{a:1,a:2}`)), `duplicate key "a"`},
		{string(wrap(`{a:1 b:2}`)), `expected ',' or '}'`},
		{string(wrap(`{a:"unterminated}`)), `unterminated string`},
		{string(wrap(`{a:1.2.3}`)), `bad number "1.2.3"`},
		{string(wrap(`{a:!2}`)), `expected !0 or !1`},
		{string(wrap(`[1]+1`)), `unexpected text after the exported literal`},
		{`a.exports={};b.exports={}`, `found 2`},
		{`nothing here`, `found 0`},
		{string(wrap(strings.Repeat("[", 100) + strings.Repeat("]", 100))), `nested deeper than 64`},
	}
	for _, c := range bad {
		_, err := exportedLiteral([]byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%.40s: error %v, want one containing %q", c.src, err, c.msg)
		}
	}
}

// FuzzExportedLiteral: no input makes the parser panic or loop, and whatever
// it accepts is plain JSON data.
func FuzzExportedLiteral(f *testing.F) {
	f.Add([]byte(`a.exports={modelTopology:{x:[1,.5,-0,!0,!1,null,"s"]}},{}]`))
	f.Add([]byte(`h.exports="QUJD"},{}]`))
	f.Add([]byte(`a.exports={"a":'b\u0041\n'}}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		v, err := exportedLiteral(src)
		if err != nil {
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("accepted %q but the value is not JSON data: %v", src, err)
		}
	})
}
