package collector

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines bounds a function of collector/ and connectors/; a longer one says why in its
// doc comment, with the words "Long because".
const maxFuncLines = 80

// TestFunctionsAreShort keeps the functions of collector/ and connectors/ (tests aside) to
// maxFuncLines lines, declaration to closing brace: a longer function is split into named
// steps, or its doc comment says why not.
func TestFunctionsAreShort(t *testing.T) {
	for _, root := range []string{".", "../connectors"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
				if lines > maxFuncLines && !strings.Contains(fn.Doc.Text(), "Long because") {
					t.Errorf("%s: %s is %d lines long (at most %d): split it into named steps, or say in its doc comment why it is \"Long because\"",
						fset.Position(fn.Pos()), fn.Name.Name, lines, maxFuncLines)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
