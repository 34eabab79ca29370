package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// maxBodyDepth bounds the nesting of a request body: the API's bodies are two levels deep.
const maxBodyDepth = 32

// checkObject checks a request body before it is decoded: it must be one JSON object (not an
// array, a string or null), and no object in it may name a key twice, exactly or in another
// case. encoding/json matches keys to fields without regard to case and lets the last one
// win, so {"client_secret":"A","CLIENT_SECRET":"B"} would reach the collector as B while a
// proxy that validates the body may have seen A. Malformed JSON is left to the decoder,
// which says where it breaks.
func checkObject(body []byte) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return &apiError{Code: codeInvalidJSON, Message: fmt.Sprintf("the body must be one JSON object, not %s", jsonTokenKind(tok))}
	}
	return checkKeys(dec, "", 1)
}

// checkKeys reads the members of an object whose '{' was read, refusing a key seen before in
// it, and the closing '}'.
func checkKeys(dec *json.Decoder, path string, depth int) *apiError {
	seen := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		field := key
		if path != "" {
			field = path + "." + key
		}
		if prev, dup := seen[foldKey(key)]; dup {
			msg := fmt.Sprintf("the key %q appears twice", key)
			if prev != key {
				msg = fmt.Sprintf("the keys %q and %q are the same key (keys are matched without regard to case)", prev, key)
			}
			return &apiError{Code: codeDuplicateField, Field: field, Message: msg + "; send each field once"}
		}
		seen[foldKey(key)] = key
		if e := checkValue(dec, field, depth); e != nil {
			return e
		}
	}
	_, _ = dec.Token() // '}'
	return nil
}

// checkValue reads one value, checking the objects in it.
func checkValue(dec *json.Decoder, path string, depth int) *apiError {
	tok, err := dec.Token()
	if err != nil {
		return nil
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxBodyDepth {
		return &apiError{Code: codeInvalidJSON, Message: fmt.Sprintf("the body is nested more than %d levels deep", maxBodyDepth)}
	}
	switch d {
	case '{':
		return checkKeys(dec, path, depth+1)
	case '[':
		for dec.More() {
			if e := checkValue(dec, path+"[]", depth+1); e != nil {
				return e
			}
		}
		_, _ = dec.Token() // ']'
	}
	return nil
}

// foldKey maps a key to a form equal for every key encoding/json would match to the same
// field: each rune becomes the smallest rune of its Unicode simple case folding orbit (so
// "K", "k" and the Kelvin sign are one, as bytes.EqualFold has it).
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// jsonTokenKind names the kind of a top-level JSON token for an error message.
func jsonTokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "that"
}

// decodeStrict decodes one JSON object with no unknown fields into v, mapping every failure to
// a 400 body that names the field.
func decodeStrict(r *http.Request, w http.ResponseWriter, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{Code: codeBodyTooLarge, Message: fmt.Sprintf("the body is larger than %d bytes", maxBody)}
		}
		return &apiError{Code: codeInvalidBody, Message: "the body could not be read"}
	}
	if e := checkObject(body); e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			ute *json.UnmarshalTypeError
			se  *json.SyntaxError
		)
		switch {
		case errors.As(err, &ute):
			return &apiError{Code: codeInvalidField, Field: ute.Field, Message: fmt.Sprintf("%s must be a JSON %s, not %s", ute.Field, jsonKind(ute.Type.Kind().String()), ute.Value)}
		case errors.As(err, &se):
			return &apiError{Code: codeInvalidJSON, Message: fmt.Sprintf("the body is not valid JSON (at byte %d)", se.Offset)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &apiError{Code: codeUnknownField, Field: f, Message: fmt.Sprintf("unknown field %q", f)}
		case errors.Is(err, io.EOF):
			return &apiError{Code: codeInvalidJSON, Message: "the body is empty; a JSON object is expected"}
		}
		return &apiError{Code: codeInvalidJSON, Message: "the body is not a valid JSON object"}
	}
	if dec.More() {
		return &apiError{Code: codeInvalidJSON, Message: "the body holds more than one JSON value"}
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "int64", "int", "int32":
		return "integer"
	case "ptr", "struct":
		return "object"
	}
	return k
}
