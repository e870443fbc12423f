/**
 * Repository files are UTF-8. A reader hands over bytes; they are decoded strictly, so that a
 * file with a byte that is no UTF-8 is refused with the place of that byte — instead of being
 * read with U+FFFD in its place and deployed so.
 */

export type Utf8Result =
  | { ok: true; text: string }
  /** byteOffset is 0-based; line and col are 1-based, col in characters as every other position. */
  | { ok: false; byteOffset: number; byte: number; line: number; col: number };

// fatal: throw instead of substituting U+FFFD. A leading byte order mark is dropped, as editors expect.
const strict = new TextDecoder('utf-8', { fatal: true });
const lenient = new TextDecoder('utf-8');

export function decodeUtf8(bytes: Uint8Array): Utf8Result {
  try {
    return { ok: true, text: strict.decode(bytes) };
  } catch {
    // Only on failure: find the first byte that is no UTF-8, and say where it is.
  }
  const byteOffset = firstInvalidByte(bytes);
  const lineStart = bytes.lastIndexOf(10, byteOffset - 1) + 1;
  let line = 1;
  for (let i = 0; i < lineStart; i++) if (bytes[i] === 10) line++;
  // Columns count characters (UTF-16 code units), as LineIndex does for the decoded text.
  const col = lenient.decode(bytes.subarray(lineStart, byteOffset)).length + 1;
  return { ok: false, byteOffset, byte: bytes[byteOffset] ?? 0, line, col };
}

/**
 * Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence); bytes.length
 * when all are good. What TextDecoder's fatal mode refuses, this finds.
 */
export function firstInvalidByte(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0; // overlong
      if (b === 0xed) hi = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90; // overlong
      if (b === 0xf4) hi = 0x8f; // above U+10FFFF
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      // A truncated or broken sequence: reported where it starts.
      if (c === undefined || (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf)) return i;
    }
    i += need + 1;
  }
  return n;
}
