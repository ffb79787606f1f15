package server

import (
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	kbridgev1 "github.com/kbridge/kbridge/gen/kbridge/v1"
)

// utf8Codec is the gRPC server's codec: protobuf, except that a kbridge
// request whose string fields hold invalid UTF-8 still decodes, so that the
// service can refuse it as INVALID_ARGUMENT naming the field (toRecords).
//
// Why: proto3 validates UTF-8 while decoding, and grpc-go answers any decode
// failure with INTERNAL before the handler or the interceptors see the call
// (so it was neither counted nor logged), and ends a whole PublishStream.
// Turning the validation off in the .proto would need Protobuf Editions,
// which older protoc releases (Debian's, behind ruby-grpc-tools) cannot
// compile: every client would pay for one server-side error code. Instead,
// when the strict decode fails, the message is decoded again against a copy
// of the API's descriptors with every string field made bytes, and copied
// into the generated type (Go strings may hold any bytes).
type utf8Codec struct {
	base encoding.CodecV2
}

func newUTF8Codec() encoding.CodecV2 {
	return utf8Codec{base: encoding.GetCodecV2("proto")}
}

func (c utf8Codec) Name() string { return c.base.Name() }

// Marshal encodes like protobuf; an API message with invalid UTF-8 in a
// string field (which proto3 refuses to encode) is encoded through its
// lenient twin. The gateway's connection uses this codec too, so a REST
// request whose path or query is not UTF-8 reaches the service and is
// refused there as 400, rather than failing in the gateway as 500.
func (c utf8Codec) Marshal(v any) (mem.BufferSlice, error) {
	out, err := c.base.Marshal(v)
	if err == nil {
		return out, nil
	}
	m, ok := v.(proto.Message)
	if !ok || !strings.Contains(err.Error(), "UTF-8") {
		return nil, err
	}
	lenient, ok := lenientType(m.ProtoReflect().Descriptor().FullName())
	if !ok {
		return nil, err
	}
	dyn := dynamicpb.NewMessage(lenient)
	copyMessage(dyn, m.ProtoReflect())
	b, lerr := proto.Marshal(dyn)
	if lerr != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// CallCodec makes a client connection use the same codec, for kbridge's
// own clients (the REST gateway's connection to the gRPC server).
func CallCodec() grpc.CallOption { return grpc.ForceCodecV2(newUTF8Codec()) }

func (c utf8Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok || !strings.Contains(err.Error(), "UTF-8") {
		return err
	}
	lenient, ok := lenientType(m.ProtoReflect().Descriptor().FullName())
	if !ok {
		return err
	}
	b := data.Materialize()
	dyn := dynamicpb.NewMessage(lenient)
	if lerr := proto.Unmarshal(b, dyn); lerr != nil {
		return err
	}
	proto.Reset(m)
	copyMessage(m.ProtoReflect(), dyn)
	return nil
}

// lenientFiles holds the API's messages with every string field as bytes,
// under the package kbridge.v1.lenient.
var lenientFiles = sync.OnceValues(func() (protoreflect.FileDescriptor, error) {
	fdp := protodesc.ToFileDescriptorProto(kbridgev1.File_kbridge_v1_producer_proto)
	const from, to = "kbridge.v1", "kbridge.v1.lenient"
	fdp.Name = proto.String("kbridge/v1/lenient.proto")
	fdp.Package = proto.String(to)
	fdp.Service = nil
	fdp.Options = nil
	var walk func([]*descriptorpb.DescriptorProto)
	walk = func(msgs []*descriptorpb.DescriptorProto) {
		for _, m := range msgs {
			for _, f := range m.Field {
				if f.GetType() == descriptorpb.FieldDescriptorProto_TYPE_STRING {
					f.Type = descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum()
				}
				if n := f.GetTypeName(); strings.HasPrefix(n, "."+from+".") {
					f.TypeName = proto.String("." + to + strings.TrimPrefix(n, "."+from))
				}
			}
			walk(m.NestedType)
		}
	}
	walk(fdp.MessageType)
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		return nil, fmt.Errorf("lenient descriptors: %w", err)
	}
	return fd, nil
})

// lenientType returns the lenient twin of an API message.
func lenientType(name protoreflect.FullName) (protoreflect.MessageDescriptor, bool) {
	fd, err := lenientFiles()
	if err != nil || name.Parent() != "kbridge.v1" {
		return nil, false
	}
	md := fd.Messages().ByName(name.Name())
	return md, md != nil
}

// copyMessage copies src (a lenient twin) into dst, field by field number,
// turning bytes back into strings where dst has strings.
func copyMessage(dst, src protoreflect.Message) {
	fields := dst.Descriptor().Fields()
	src.Range(func(sfd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dfd := fields.ByNumber(sfd.Number())
		if dfd == nil {
			return true
		}
		switch {
		case dfd.IsList():
			dl, sl := dst.Mutable(dfd).List(), v.List()
			for i := range sl.Len() {
				if dfd.Message() != nil {
					el := dl.NewElement()
					copyMessage(el.Message(), sl.Get(i).Message())
					dl.Append(el)
				} else {
					dl.Append(scalar(dfd, sl.Get(i)))
				}
			}
		case dfd.Message() != nil:
			copyMessage(dst.Mutable(dfd).Message(), v.Message())
		default:
			dst.Set(dfd, scalar(dfd, v))
		}
		return true
	})
}

// scalar converts v for dst's field fd: bytes to string and back, where
// the twins differ.
func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	switch x := v.Interface().(type) {
	case []byte:
		if fd.Kind() == protoreflect.StringKind {
			return protoreflect.ValueOfString(string(x))
		}
	case string:
		if fd.Kind() == protoreflect.BytesKind {
			return protoreflect.ValueOfBytes([]byte(x))
		}
	}
	return v
}
