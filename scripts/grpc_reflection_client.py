"""A gRPC client that knows nothing of Hilo's .proto files: it learns a server's services and
messages through reflection alone, as grpcurl or Postman would, then checks health, lists the
services, and makes one call with an access token and the same call without one.

Usage: python grpc_reflection_client.py ADDR SERVICE METHOD REQUEST_JSON TOKEN
Prints one JSON object: {"health", "services", "authorized", "response", "refused"}.
Run by the end-to-end test e2e/tests/grpc.rs (its venv is prepared by scripts/test.sh).
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


def reflect(channel, request):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(stub.ServerReflectionInfo(iter([request])))


def load_service(channel, pool, service):
    """Adds the files defining `service` (and what they import) to `pool`."""
    reply = reflect(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service))
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in reply.file_descriptor_response.file_descriptor_proto]
    pending = {f.name: f for f in files}
    while pending:
        progressed = False
        for name, proto in list(pending.items()):
            deps_known = True
            for dep in proto.dependency:
                try:
                    pool.FindFileByName(dep)
                except KeyError:
                    deps_known = False
            if deps_known:
                pool.Add(proto)
                del pending[name]
                progressed = True
        if not progressed:
            # Fetch a missing dependency by name.
            missing = next(d for p in pending.values() for d in p.dependency if d not in pending)
            reply = reflect(channel, reflection_pb2.ServerReflectionRequest(file_by_filename=missing))
            for raw in reply.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
                pending.setdefault(proto.name, proto)
    return pool.FindServiceByName(service)


def main(addr, service, method, request_json, token):
    channel = grpc.insecure_channel(addr)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    listed = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    services = sorted(s.name for s in listed.list_services_response.service)

    pool = descriptor_pool.DescriptorPool()
    described = load_service(channel, pool, service).FindMethodByName(method)
    request_class = message_factory.GetMessageClass(described.input_type)
    response_class = message_factory.GetMessageClass(described.output_type)
    call = channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    request = json_format.Parse(request_json, request_class())
    out = {"health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status), "services": services}
    try:
        response = call(request, metadata=[("authorization", f"Bearer {token}")], timeout=5)
        out["authorized"] = "OK"
        out["response"] = json_format.MessageToDict(response)
    except grpc.RpcError as error:
        out["authorized"] = error.code().name
    try:
        call(request, timeout=5)
        out["refused"] = "OK"
    except grpc.RpcError as error:
        out["refused"] = error.code().name
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:6])
