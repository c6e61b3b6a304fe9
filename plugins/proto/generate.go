// Package proto holds the definition of the Ponte connector protocol
// (ponte/connector/v1/connector.proto) and, in subpackages, the Go code
// generated from it and the host's side of the protocol.
//
// Connector authors never import these packages: they implement the plain Go
// interfaces of plugins/sdk.
//
// To regenerate after editing the .proto file (protoc 3.21 or later, with
// protoc-gen-go v1.36 and protoc-gen-go-grpc v1.6 on PATH):
//
//	go generate ./plugins/proto
package proto

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative ponte/connector/v1/connector.proto
