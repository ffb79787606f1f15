package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// strictJSON is the gateway's JSON marshaler with a stricter decoder: the
// body must be exactly one JSON document. grpc-gateway's own decoder reads
// the first document and ignores the rest, so `{"records":[…]} {"records":
// […]}` published the first request and dropped the second without a word.
// Its errors also say what is wrong with the body in words a caller can
// act on, not in encoding/json's or protojson's.
type strictJSON struct {
	*runtime.JSONPb
}

// NewDecoder reads the whole body (bounded by limitBody) and decodes it as
// one document.
func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return fmt.Errorf("request body is larger than the limit of %d bytes", tooLarge.Limit)
		case err != nil:
			return fmt.Errorf("reading the request body: %w", err)
		case len(bytes.TrimSpace(data)) == 0:
			return io.EOF // no body: a request without records, refused by validation
		}
		if err := checkOneDocument(data); err != nil {
			return err
		}
		if err := m.JSONPb.Unmarshal(data, v); err != nil {
			return fmt.Errorf("request body: %s", cleanProtoJSONError(err))
		}
		return nil
	})
}

// checkOneDocument reports a body that is not exactly one JSON document,
// with the byte offset of the problem.
func checkOneDocument(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var doc json.RawMessage
	if err := dec.Decode(&doc); err != nil {
		var syntax *json.SyntaxError
		switch {
		case errors.As(err, &syntax):
			return fmt.Errorf("request body is not valid JSON: %s (at byte %d)", syntax.Error(), syntax.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("request body is not valid JSON: it ends in the middle of the document")
		}
		return fmt.Errorf("request body is not valid JSON: %s", err)
	}
	if dec.More() || dec.InputOffset() < int64(len(bytes.TrimRight(data, " \t\r\n"))) {
		return fmt.Errorf("request body has more after its JSON document (at byte %d): send one document", dec.InputOffset())
	}
	return nil
}

// cleanProtoJSONError drops protojson's "proto:" prefix and the
// non-breaking space it uses to keep callers from matching its text.
func cleanProtoJSONError(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	return strings.TrimSpace(strings.TrimPrefix(msg, "proto:"))
}
