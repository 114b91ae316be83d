// Wire format version 1 (docs/wire-format.md): control frames, data channel inits, packets.
export { AckReader, MAX_ACKS_PER_FRAME, encodeAcks } from './ack.js';
export {
  ACK_MAGIC,
  CHANNEL_INIT_BYTES,
  CONNECTION_MAGIC_BYTES,
  CONTROL_MAGIC,
  DATA_MAGIC,
  MAX_BLOCK_NAME_BYTES,
  MAX_BLOCKS,
  MAX_CHANNELS,
  MAX_CONTROL_BODY,
  MAX_PAGES_PER_PACKET,
  MAX_ZERO_RUNS,
  PACKET_FIXED_HEADER_BYTES,
  PACKET_FLAG_SYNC,
  PACKET_MAGIC,
  PROTOCOL_VERSION,
  SESSION_ID_BYTES,
  connectionKind,
} from './constants.js';
export { checkChannelInit, encodeChannelInit, parseChannelInit, readChannelInit, type ChannelInit, type ChannelInitExpectation } from './channel-init.js';
export type {
  BlockDescriptor,
  CompleteMessage,
  ControlMessage,
  ControlType,
  ErrorMessage,
  HelloAckMessage,
  ResumeAckMessage,
  ResumeMessage,
  HelloMessage,
  ReportMessage,
  RoundEndMessage,
  ZeroPageDetection,
  ZeroPagesMessage,
} from './control-messages.js';
export { ControlReader, encodeControl } from './control.js';
export {
  encodeSyncPacket,
  packetHeaderBytes,
  verifyPacketChecksum,
  writePacket,
  writePacketHeader,
  readValidatedHeader,
  packetChecksum,
  type PacketHeader,
  type ParsedPacket,
} from './packet.js';
export { PacketReader, type PacketReaderOptions } from './packet-reader.js';
export { appendPage, extendsLastRun, runsPageCount, type PageRun } from './page-runs.js';
