/** Types of scan.mjs (the recovery scan, also run as a worker thread). */

export type ScanStop =
  | { readonly kind: "clean"; readonly end: number }
  | {
      readonly kind: "bad";
      readonly end: number;
      readonly reason: string;
      /** Set when a record of this many bytes (header included) is in the file but fails its check. */
      readonly recordBytes?: number;
      /** Set when what stopped the scan cannot be a write cut short by a crash. */
      readonly damage?: boolean;
    };

/**
 * What one segment holds, in file order. `events` is a sequence of tagged
 * tuples:
 *  - EV_HEADER:     tag, offset, magic, seq, startIndex, resetsLog (0/1), sizeBytes
 *  - EV_ENTRIES:    tag, offset, firstIndex, count, offsetsStart, termsStart, termCount
 *                   (consecutive entries with no other record between them; their
 *                   file offsets are `offsets[offsetsStart ..+ count]`, and
 *                   `terms[2 * (termsStart + k) ..]` is an (index, term) pair where
 *                   the term changes, the first at `firstIndex`)
 *  - EV_HARD_STATE: tag, offset, term, vote, commit
 *  - EV_TRUNCATE:   tag, offset, fromIndex
 * Every record in it passed its CRC32C check; `stop` says where and why the
 * scan ended.
 */
export interface SegmentScan {
  readonly stop: ScanStop;
  readonly events: Float64Array;
  readonly offsets: Float64Array;
  readonly terms: Float64Array;
}

export const EV_HEADER: 1;
export const EV_ENTRIES: 2;
export const EV_HARD_STATE: 3;
export const EV_TRUNCATE: 4;

export function scanSegmentFile(fd: number, fileSize: number): SegmentScan;
export function crc32cWords(
  buf: Uint8Array,
  words: Int32Array,
  crc: number,
  start: number,
  end: number,
): number;
