package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeFile decodes the YAML file name (its contents raw) into c. A value of
// the wrong type and an unknown key are recorded in pe, each naming its full
// path, and the rest of the file is still applied. The returned error is for a
// file that cannot be read as YAML at all.
func decodeFile(name string, raw []byte, c *Config, pe *parseErrors) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config file %s: %w", name, err)
	}
	// yaml decoded every value it could and says which did not fit, by line
	// only. Walk the document along Config to name each by its path.
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return fmt.Errorf("config file %s: %w", name, te)
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: %w", name, te)
	}
	w := fileWalker{name: name}
	w.mapping(root, reflect.TypeFor[Config](), "")
	for _, e := range w.errs {
		pe.add(e)
	}
	if len(w.errs) < len(te.Errors) {
		// Something the walk did not place: report yaml's own words rather
		// than lose it.
		pe.add(fmt.Errorf("config file %s: %w", name, te))
	}
	return nil
}

// fileWalker finds the values of a YAML document that do not fit Config.
type fileWalker struct {
	name string
	errs []error
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// structField is a field of a struct as YAML sees it.
type structField struct {
	t      reflect.Type
	secret bool
}

// yamlFields lists the fields of struct type t by YAML key, with the fields of
// inline structs in place. It reports whether t takes any key (an inline map).
func yamlFields(t reflect.Type, secret bool, out map[string]structField) (anyKey bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, inline := yamlName(f)
		sec := secret || f.Tag.Get("secret") == "true"
		switch {
		case name == "-":
		case inline && f.Type.Kind() == reflect.Struct:
			anyKey = yamlFields(f.Type, sec, out) || anyKey
		case inline:
			anyKey = true
		default:
			out[name] = structField{t: f.Type, secret: sec}
		}
	}
	return anyKey
}

// mapping walks a mapping node that fills struct type t at path.
func (w *fileWalker) mapping(n *yaml.Node, t reflect.Type, path string) {
	w.mappingSecret(n, t, path, false)
}

func (w *fileWalker) mappingSecret(n *yaml.Node, t reflect.Type, path string, secret bool) {
	fields := map[string]structField{}
	anyKey := yamlFields(t, secret, fields)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			// A merge key: its mapping (or list of mappings) fills t too.
			v = resolve(v)
			merged := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				merged = v.Content
			}
			for _, m := range merged {
				if m = resolve(m); m.Kind == yaml.MappingNode {
					w.mappingSecret(m, t, path, secret)
				}
			}
			continue
		}
		f, ok := fields[k.Value]
		if !ok {
			if !anyKey {
				w.errs = append(w.errs, fmt.Errorf("%s: unknown setting (%s:%d)", join(path, k.Value), w.name, k.Line))
			}
			continue
		}
		w.value(v, f.t, join(path, k.Value), f.secret)
	}
}

// value walks node n that fills a field of type t at path.
func (w *fileWalker) value(n *yaml.Node, t reflect.Type, path string, secret bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the field as it is
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != durationType && !reflect.PointerTo(t).Implements(unmarshalerType) {
		switch {
		case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
			w.mappingSecret(n, t, path, secret)
			return
		case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode && composite(t.Elem()):
			for i, e := range n.Content {
				w.value(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), secret)
			}
			return
		case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode && composite(t.Elem()):
			for i := 0; i+1 < len(n.Content); i += 2 {
				w.value(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), secret)
			}
			return
		}
	}
	// A leaf (or a structure given something else): yaml decodes it alone.
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	fe := &FieldError{Field: path, Value: nodeText(n), Err: err}
	if secret {
		// yaml's message quotes the start of the value.
		fe.Value, fe.Err = RedactedText, nil
	}
	fe.Reason = fmt.Sprintf("%s (%s:%d)", nodeReason(n, t), w.name, n.Line)
	w.errs = append(w.errs, fe)
}

// composite reports whether a list or map of t is walked element by element:
// its elements are structures with keys of their own.
func composite(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t != durationType && (t.Kind() == reflect.Struct || t.Kind() == reflect.Slice && composite(t.Elem()) ||
		t.Kind() == reflect.Map && composite(t.Elem()))
}

// nodeReason says why node n does not fit type t.
func nodeReason(n *yaml.Node, t reflect.Type) string {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && t != durationType {
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return valueReason(t, strconv.ErrRange)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if !strings.HasPrefix(n.Value, "-") {
				return valueReason(t, strconv.ErrRange)
			}
		}
	}
	return valueReason(t, nil)
}

// nodeText shows a node's value: a scalar as written, a list or mapping in
// YAML's flow style, shortened.
func nodeText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	cp := *n
	cp.Style |= yaml.FlowStyle
	out, err := yaml.Marshal(&cp)
	if err != nil {
		return n.ShortTag()
	}
	s := strings.TrimSpace(string(out))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// join appends name to a dotted path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
