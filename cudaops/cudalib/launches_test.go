package cudalib

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// kernelParams reads every kernel's parameters from kernels.cu: for each, the Go type a
// launch must pass (cudaops' launch: cu.DevicePtr for a pointer, int32 for int, int64 for
// long long, uint32 and uint64 for the unsigned types, float32 for float).
func kernelParams(t *testing.T) map[string][]string {
	t.Helper()
	sig := regexp.MustCompile(`KERNEL void (?:__launch_bounds__\(\d+\) )?(\w+)\(([^)]*)\)`)
	goType := map[string]string{"int": "int32", "long long": "int64", "unsigned": "uint32", "unsigned int": "uint32",
		"unsigned long long": "uint64", "float": "float32"}
	params := map[string][]string{}
	for _, m := range sig.FindAllStringSubmatch(Kernels, -1) {
		var types []string
		for _, p := range strings.Split(m[2], ",") {
			p = strings.Join(strings.Fields(p), " ")
			if strings.Contains(p, "*") {
				types = append(types, "cu.DevicePtr")
				continue
			}
			words := strings.Fields(p)
			c := strings.Join(words[:len(words)-1], " ") // the type, without the name
			gt, ok := goType[strings.TrimPrefix(c, "const ")]
			if !ok {
				t.Fatalf("kernel %s: parameter %q has a type no launch passes", m[1], p)
			}
			types = append(types, gt)
		}
		params[m[1]] = types
	}
	return params
}

// TestLaunchesMatchKernels: every kernel launch in cudaops (b.kernel and b.launch calls
// naming b.k.<field>) passes as many arguments as its kernel in kernels.cu has
// parameters, each of the parameter's Go type where the source shows it (a conversion,
// a .ptr, a typed parameter of the calling method). cudaops builds only with the cuda
// tag and kemu calls the kernels through its own C wrappers, so without this a launch
// left behind by a changed kernel would fail only on a GPU, where it reads garbage.
func TestLaunchesMatchKernels(t *testing.T) {
	params := kernelParams(t)
	if len(params) != len(KernelNames) {
		t.Fatalf("kernels.cu declares %d kernels, KernelNames lists %d", len(params), len(KernelNames))
	}
	files, err := filepath.Glob("../*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("cudaops sources: %v (%d files)", err, len(files))
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	field := map[string]string{} // kernels struct field → kernel name, from kernels.load's map
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, af)
		ast.Inspect(af, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			lit, ok1 := kv.Key.(*ast.BasicLit)
			ref, ok2 := kv.Value.(*ast.UnaryExpr)
			if ok1 && ok2 && lit.Kind == token.STRING && ref.Op == token.AND {
				if sel, ok := ref.X.(*ast.SelectorExpr); ok {
					name, _ := strconv.Unquote(lit.Value)
					field[sel.Sel.Name] = name
				}
			}
			return true
		})
	}
	if len(field) != len(KernelNames) {
		t.Fatalf("kernels.load binds %d kernels, KernelNames lists %d", len(field), len(KernelNames))
	}
	known := packageTypes(parsed)
	launched := map[string]bool{}
	for _, af := range parsed {
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			declared := localTypes(fd, known)
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				fn, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (fn.Sel.Name != "kernel" && fn.Sel.Name != "launch") || len(call.Args) < 3 {
					return true
				}
				k, ok := call.Args[0].(*ast.SelectorExpr)
				if !ok {
					return true // launch's own forwarding call
				}
				name, ok := field[k.Sel.Name]
				if !ok {
					t.Errorf("%s: launch of b.k.%s, which kernels.load does not bind", fset.Position(call.Pos()), k.Sel.Name)
					return true
				}
				launched[name] = true
				args, want := call.Args[3:], params[name]
				if len(args) != len(want) {
					t.Errorf("%s: kernel %s launched with %d arguments, kernels.cu declares %d", fset.Position(call.Pos()), name, len(args), len(want))
					return true
				}
				for i, a := range args {
					if got := argType(a, declared); got != "" && got != want[i] {
						t.Errorf("%s: kernel %s argument %d is %s, its parameter takes %s", fset.Position(a.Pos()), name, i+1, got, want[i])
					}
				}
				return true
			})
		}
	}
	for _, name := range KernelNames {
		if !launched[name] {
			t.Errorf("kernel %s: no launch found (launched through a variable? the parse would miss it)", name)
		}
	}
}

// typeName is a written type as text: "float32", "cu.DevicePtr"; "" for others.
func typeName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		if id, ok := x.X.(*ast.Ident); ok {
			return id.Name + "." + x.Sel.Name
		}
	}
	return ""
}

// packageTypes is what the package declares with a written type: each function's
// single result ("func:" + name) and each struct field ("field:" + name).
func packageTypes(files []*ast.File) map[string]string {
	m := map[string]string{}
	for _, af := range files {
		ast.Inspect(af, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncDecl:
				if x.Recv == nil && x.Type.Results != nil && len(x.Type.Results.List) == 1 {
					m["func:"+x.Name.Name] = typeName(x.Type.Results.List[0].Type)
				}
			case *ast.StructType:
				for _, f := range x.Fields.List {
					for _, n := range f.Names {
						m["field:"+n.Name] = typeName(f.Type)
					}
				}
			}
			return true
		})
	}
	return m
}

// localTypes maps the names of fd's parameters, and of its locals assigned from a call
// of a package function (px := optional(...)), to their types; "field:" entries of known
// pass through, for b.<field>.
func localTypes(fd *ast.FuncDecl, known map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range known {
		if strings.HasPrefix(k, "field:") {
			m[k] = v
		}
	}
	for _, f := range fd.Type.Params.List {
		for _, n := range f.Names {
			m[n.Name] = typeName(f.Type)
		}
	}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || as.Tok != token.DEFINE || len(as.Lhs) != len(as.Rhs) {
			return true
		}
		for i, l := range as.Lhs {
			id, ok1 := l.(*ast.Ident)
			call, ok2 := as.Rhs[i].(*ast.CallExpr)
			if !ok1 || !ok2 {
				continue
			}
			if fn, ok := call.Fun.(*ast.Ident); ok && known["func:"+fn.Name] != "" {
				m[id.Name] = known["func:"+fn.Name]
			}
		}
		return true
	})
	return m
}

// argType is the Go type of a launch argument where the source shows it: a conversion,
// an untyped constant (int or float64 in a ...any: always wrong), a device pointer's
// .ptr, a field of the backend, a parameter of the calling method, a local from a package
// function, an operand of an arithmetic expression, unlessAt's value; "" when it does not.
func argType(a ast.Expr, declared map[string]string) string {
	switch x := a.(type) {
	case *ast.BasicLit:
		return map[token.Token]string{token.INT: "int", token.FLOAT: "float64"}[x.Kind]
	case *ast.ParenExpr:
		return argType(x.X, declared)
	case *ast.BinaryExpr:
		if t := argType(x.X, declared); t != "" && t != "int" && t != "float64" {
			return t // an untyped constant takes the other operand's type
		}
		return argType(x.Y, declared)
	case *ast.CallExpr:
		if id, ok := x.Fun.(*ast.Ident); ok {
			switch id.Name {
			case "int32", "int64", "uint32", "uint64", "float32", "float64", "int":
				return id.Name
			case "unlessAt": // generic: the type of its value
				return argType(x.Args[0], declared)
			}
		}
	case *ast.SelectorExpr:
		if x.Sel.Name == "ptr" {
			return "cu.DevicePtr"
		}
		if id, ok := x.X.(*ast.Ident); ok && id.Name == "b" {
			return declared["field:"+x.Sel.Name]
		}
	case *ast.Ident:
		return declared[x.Name]
	}
	return ""
}
