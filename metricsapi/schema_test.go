package metricsapi_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// openapiDoc is the part of an OpenAPI 3 document the tests read.
type openapiDoc struct {
	OpenAPI    string                          `json:"openapi"`
	Paths      map[string]map[string]openapiOp `json:"paths"`
	Components struct {
		Schemas    map[string]*schema         `json:"schemas"`
		Parameters map[string]openapiParam    `json:"parameters"`
		Responses  map[string]openapiResponse `json:"responses"`
	} `json:"components"`
}

type openapiOp struct {
	OperationID string                     `json:"operationId"`
	ServedBy    string                     `json:"x-served-by"`
	Parameters  []openapiParam             `json:"parameters"`
	Responses   map[string]openapiResponse `json:"responses"`
}

type openapiParam struct {
	Ref      string  `json:"$ref"`
	Name     string  `json:"name"`
	In       string  `json:"in"`
	Required bool    `json:"required"`
	Schema   *schema `json:"schema"`
}

type openapiResponse struct {
	Ref     string `json:"$ref"`
	Content map[string]struct {
		Schema *schema `json:"schema"`
	} `json:"content"`
}

// schema is the subset of JSON Schema the document uses.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Nullable             bool               `json:"nullable"`
	Required             []string           `json:"required"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *bool              `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Enum                 []any              `json:"enum"`
	Minimum              *float64           `json:"minimum"`
	Maximum              *float64           `json:"maximum"`
	Example              any                `json:"example"`
}

func (d *openapiDoc) resolve(s *schema) *schema {
	for s != nil && s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

func (d *openapiDoc) param(p openapiParam) openapiParam {
	if p.Ref != "" {
		return d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
	}
	return p
}

func (d *openapiDoc) response(r openapiResponse) openapiResponse {
	if r.Ref != "" {
		return d.Components.Responses[strings.TrimPrefix(r.Ref, "#/components/responses/")]
	}
	return r
}

// validate checks a decoded JSON value against s and returns every mismatch.
func (d *openapiDoc) validate(path string, v any, s *schema) []string {
	s = d.resolve(s)
	if s == nil {
		return []string{path + ": no schema"}
	}
	if v == nil {
		if s.Nullable {
			return nil
		}
		return []string{path + ": null but not nullable"}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if len(s.Enum) > 0 && !slices.Contains(s.Enum, v) {
		bad("%v is not in %v", v, s.Enum)
	}
	switch s.Type {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("%T is not an object", v)
			break
		}
		for _, k := range s.Required {
			if _, ok := obj[k]; !ok {
				bad("required property %q is missing", k)
			}
		}
		for k, val := range obj {
			ps, ok := s.Properties[k]
			if !ok {
				if s.AdditionalProperties != nil && !*s.AdditionalProperties {
					bad("property %q is not documented", k)
				}
				continue
			}
			errs = append(errs, d.validate(path+"."+k, val, ps)...)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			bad("%T is not an array", v)
			break
		}
		for i, item := range arr {
			errs = append(errs, d.validate(fmt.Sprintf("%s[%d]", path, i), item, s.Items)...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("%T is not a string", v)
			break
		}
		switch s.Format {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				bad("%q is not a date-time", str)
			}
		case "uuid":
			if _, err := uuid.Parse(str); err != nil {
				bad("%q is not a uuid", str)
			}
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			bad("%T is not a number", v)
			break
		}
		f, err := n.Float64()
		if err != nil {
			bad("%s does not parse", n)
		}
		if s.Type == "integer" && strings.ContainsAny(n.String(), ".eE") {
			bad("%s is not an integer", n)
		}
		if s.Minimum != nil && f < *s.Minimum || s.Maximum != nil && f > *s.Maximum {
			bad("%s is out of range", n)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("%T is not a boolean", v)
		}
	case "":
	default:
		bad("unknown schema type %q", s.Type)
	}
	return errs
}
