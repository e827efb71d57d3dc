/**
 * An EventBatch message made from event frames already serialized for fan-out, by copying
 * bytes: no decode, no encode. An event frame is `ConnectResponse{event (field 2): Event}`,
 * that is tag 0x12, the Event's length, its bytes. In `ConnectResponse{events (field 6):
 * EventBatch{events (field 1): Event…}}` each element is the same length and bytes behind
 * tag 0x0a, so the batch is tag 0x32, the sum of the frames' lengths, then every frame with
 * its first byte changed.
 */

const EVENT_FRAME_TAG = 0x12; // field 2 (event), length-delimited
const BATCH_ELEMENT_TAG = 0x0a; // field 1 (events), length-delimited
const BATCH_FRAME_TAG = 0x32; // field 6 (events), length-delimited

/** Whether a frame is a lone event (what fan-out and replays send), so it may join a batch. */
export function isEventFrame(frame: Uint8Array): boolean {
  return frame.byteLength > 1 && frame[0] === EVENT_FRAME_TAG;
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

/** One ConnectResponse carrying every event of `frames` (each `isEventFrame`), in order. */
export function batchFrames(frames: readonly Uint8Array[]): Uint8Array {
  let inner = 0;
  for (const frame of frames) inner += frame.byteLength;
  const batch = new Uint8Array(1 + varintLength(inner) + inner);
  batch[0] = BATCH_FRAME_TAG;
  let offset = 1;
  for (let rest = inner; ; ) {
    if (rest < 0x80) {
      batch[offset++] = rest;
      break;
    }
    batch[offset++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  for (const frame of frames) {
    batch.set(frame, offset);
    batch[offset] = BATCH_ELEMENT_TAG;
    offset += frame.byteLength;
  }
  return batch;
}
