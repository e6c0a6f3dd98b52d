export { decodeMessage, encodeMessage, MESSAGE_TAGS, messageSize } from "./codec.ts";
export { decodeFrame, encodeFrame, type Frame, FrameDecoder, PROTOCOL_VERSION } from "./frame.ts";
export {
  type FaultDecision,
  type FaultHook,
  MemoryNetwork,
  type MemoryNetworkOptions,
  MemoryTransport,
} from "./memory.ts";
export {
  backoffDelayMs,
  parseAddress,
  TCP_DEFAULTS,
  type TcpTransportOptions,
  type TlsOptions,
} from "./options.ts";
export { RPC_BUSY, RPC_INTERNAL, RPC_NO_HANDLER } from "./rpc.ts";
export { TcpTransport } from "./tcp.ts";
export {
  type Logger,
  type MessageHandler,
  type PeerMetrics,
  type PeerState,
  type PeerStatus,
  type RequestOptions,
  type RpcContext,
  type RpcHandler,
  silentLogger,
  type Transport,
  type UnreachableHandler,
  type UnreachableReason,
} from "./transport.ts";
