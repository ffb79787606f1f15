package bridge

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		ok    bool
	}{
		{"empty", "", false},
		{"dot", ".", false},
		{"dot dot", "..", false},
		{"three dots", "...", true},
		{"249 chars", strings.Repeat("a", 249), true},
		{"250 chars", strings.Repeat("a", 250), false},
		{"space", "my topic", false},
		{"slash", "a/b", false},
		{"unicode", "tópico", false},
		{"NUL", "a\x00b", false},
		{"colon", "a:b", false},
		{"leading space", " t", false},
		{"plain", "orders", true},
		{"dot underscore dash", "app.orders_v2-dlq", true},
		{"leading dot", ".hidden", true},
		{"digits and caps", "Topic123", true},
		{"single char", "t", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTopic(tt.topic)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateTopic(%q) = %v, want nil", tt.topic, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateTopic(%q) = %v, want ErrInvalid", tt.topic, err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "topic" || ve.Record != -1 {
				t.Fatalf("ValidateTopic(%q) = %#v, want a request-level ValidationError on topic", tt.topic, err)
			}
		})
	}
}

func TestValidateRecords(t *testing.T) {
	const limit = 100
	tests := []struct {
		name    string
		records []Record
		// wantRecord and wantField locate the error; wantRecord is -2 for
		// no error.
		wantRecord int
		wantField  string
	}{
		{name: "no records", records: nil, wantRecord: -1, wantField: "records"},
		{name: "empty slice", records: []Record{}, wantRecord: -1, wantField: "records"},
		{name: "one empty record", records: []Record{{}}, wantRecord: -2},
		{name: "value exactly at limit", records: []Record{{Value: make([]byte, limit)}}, wantRecord: -2},
		{name: "value one over limit", records: []Record{{Value: make([]byte, limit+1)}}, wantRecord: 0, wantField: "value"},
		{
			name:       "key and value together exactly at limit",
			records:    []Record{{Key: make([]byte, 40), Value: make([]byte, 60)}},
			wantRecord: -2,
		},
		{
			name:       "key counts towards the limit",
			records:    []Record{{Key: make([]byte, 41), Value: make([]byte, 60)}},
			wantRecord: 0, wantField: "value",
		},
		{
			name: "header key and value count towards the limit",
			records: []Record{{Key: make([]byte, 10), Value: make([]byte, 80),
				Headers: []Header{{Key: "hdr", Value: make([]byte, 8)}}}},
			wantRecord: 0, wantField: "value",
		},
		{
			name: "headers exactly at limit",
			records: []Record{{Key: make([]byte, 10), Value: make([]byte, 80),
				Headers: []Header{{Key: "hdr", Value: make([]byte, 7)}}}},
			wantRecord: -2,
		},
		{
			name:       "third record oversize",
			records:    []Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: make([]byte, limit+1)}},
			wantRecord: 2, wantField: "value",
		},
		{name: "negative partition", records: []Record{{Partition: -1, HasPartition: true}}, wantRecord: 0, wantField: "partition"},
		{name: "negative partition ignored without HasPartition", records: []Record{{Partition: -1}}, wantRecord: -2},
		{name: "partition zero", records: []Record{{Partition: 0, HasPartition: true}}, wantRecord: -2},
		{
			name:       "empty header key",
			records:    []Record{{Headers: []Header{{Key: "a", Value: []byte("1")}, {Key: "", Value: []byte("2")}}}},
			wantRecord: 0, wantField: "headers[1].key",
		},
		{
			name:       "repeated header keys and empty header value are fine",
			records:    []Record{{Headers: []Header{{Key: "a"}, {Key: "a", Value: []byte{}}}}},
			wantRecord: -2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateRecords(tt.records, limit)
			checkValidation(t, err, tt.wantRecord, tt.wantField)
		})
	}
}

func TestValidatePartitions(t *testing.T) {
	tests := []struct {
		name       string
		records    []Record
		partitions int32
		wantRecord int
		wantField  string
	}{
		{name: "no explicit partitions", records: []Record{{}, {Key: []byte("k")}}, partitions: 3, wantRecord: -2},
		{name: "partition 0", records: []Record{{HasPartition: true}}, partitions: 3, wantRecord: -2},
		{name: "last partition", records: []Record{{Partition: 2, HasPartition: true}}, partitions: 3, wantRecord: -2},
		{name: "partition == count", records: []Record{{Partition: 3, HasPartition: true}}, partitions: 3, wantRecord: 0, wantField: "partition"},
		{
			name:       "second record out of range",
			records:    []Record{{Partition: 1, HasPartition: true}, {Partition: 7, HasPartition: true}},
			partitions: 3, wantRecord: 1, wantField: "partition",
		},
		{name: "large partition without HasPartition", records: []Record{{Partition: 99}}, partitions: 3, wantRecord: -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validatePartitions(tt.records, tt.partitions)
			checkValidation(t, err, tt.wantRecord, tt.wantField)
		})
	}
}

// checkValidation checks that err is nil (wantRecord -2) or a ValidationError
// for the given record index and field.
func checkValidation(t *testing.T, err error, wantRecord int, wantField string) {
	t.Helper()
	if wantRecord == -2 {
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %T, want *ValidationError", err)
	}
	if ve.Record != wantRecord || ve.Field != wantField {
		t.Fatalf("got records[%d].%s (%v), want records[%d].%s", ve.Record, ve.Field, err, wantRecord, wantField)
	}
	if ve.Reason == "" {
		t.Fatal("ValidationError has no reason")
	}
}

// FuzzValidateTopic checks that ValidateTopic never panics, that every name it
// accepts is 1 to 249 bytes of [a-zA-Z0-9._-] other than "." and "..", and
// that every name it refuses is refused as ErrInvalid.
func FuzzValidateTopic(f *testing.F) {
	for _, s := range []string{"", ".", "..", "orders", "a/b", "tópico", "a\x00", strings.Repeat("x", 250)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		err := ValidateTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateTopic(%q) = %v, not ErrInvalid", topic, err)
			}
			return
		}
		if len(topic) < 1 || len(topic) > 249 || topic == "." || topic == ".." {
			t.Fatalf("ValidateTopic accepted %q (length %d)", topic, len(topic))
		}
		for i := 0; i < len(topic); i++ {
			c := topic[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				t.Fatalf("ValidateTopic accepted %q with byte %q at %d", topic, c, i)
			}
		}
	})
}

// FuzzValidateRecords checks, for one record built from the fuzz input, that
// validateRecords never panics and accepts it exactly when its key, value and
// header bytes fit the limit, its explicit partition is not negative and its
// header key is not empty.
func FuzzValidateRecords(f *testing.F) {
	f.Add([]byte("k"), []byte("v"), "h", []byte("hv"), int32(0), true, 10)
	f.Add([]byte(nil), []byte(nil), "", []byte(nil), int32(-1), true, 0)
	f.Add([]byte("key"), []byte("value"), "x", []byte("y"), int32(5), false, 10)
	f.Fuzz(func(t *testing.T, key, value []byte, hkey string, hval []byte, partition int32, hasPartition bool, limit int) {
		r := Record{Key: key, Value: value, Partition: partition, HasPartition: hasPartition,
			Headers: []Header{{Key: hkey, Value: hval}}}
		err := validateRecords([]Record{r}, limit)
		size := len(key) + len(value) + len(hkey) + len(hval)
		want := size <= limit && !(hasPartition && partition < 0) && hkey != ""
		if (err == nil) != want {
			t.Fatalf("validateRecords(size %d, limit %d, partition %d/%v, header key %q) = %v, want ok=%v",
				size, limit, partition, hasPartition, hkey, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v is not ErrInvalid", err)
		}
	})
}
