/**
 * Tokenizer for Varlink interface definitions.
 *
 * Produces one token at a time with its 1-based line and column. Whitespace, line breaks and
 * `#` comments are skipped; the comment lines met since the previous token travel on the next
 * token as `doc`, so the parser can attach them to whatever that token starts (interface,
 * member, field or enum value) and drop them everywhere else.
 */
import { IdlError, type Position } from './ast.js';

export type TokenKind = 'word' | '(' | ')' | ',' | ':' | '?' | '->' | '[]' | '[string]' | 'eof';

export interface Token {
  kind: TokenKind;
  /** The source text of the token ('' at end of input). */
  text: string;
  line: number;
  column: number;
  /** Comment lines between the previous token and this one: `#` and one following space removed. */
  doc: string[];
}

/** Horizontal whitespace accepted by the grammar (varlink.org / UAPI.20). */
export function isBlank(c: number): boolean {
  return (
    c === 0x20 || c === 0x09 || c === 0xa0 || c === 0xfeff || c === 0x1680 || c === 0x180e ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x202f || c === 0x205f || c === 0x3000
  );
}

/** Line terminators other than `\r\n` (which is handled as one break). */
export function isLineBreak(c: number): boolean {
  return c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029;
}

function isWordStart(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;
}

/** Words also carry `.` and `-` so that interface names are one token. */
function isWordChar(c: number): boolean {
  return isWordStart(c) || c === 0x2e || c === 0x2d;
}

/** How a token is named in error messages. */
export function describe(t: Token): string {
  return t.kind === 'eof' ? 'end of input' : `'${t.text}'`;
}

export class Lexer {
  private pos = 0;
  private line = 1;
  private column = 1;
  private peeked: Token | undefined;

  constructor(
    private readonly text: string,
    private readonly file?: string,
  ) {}

  peek(): Token {
    this.peeked ??= this.scan();
    return this.peeked;
  }

  next(): Token {
    const t = this.peek();
    this.peeked = undefined;
    return t;
  }

  fail(reason: string, at: Position): never {
    throw new IdlError(reason, { line: at.line, column: at.column }, this.file);
  }

  /** Advances over one UTF-16 unit, counting columns in code points. */
  private advance(): void {
    const c = this.text.charCodeAt(this.pos++);
    if (c === 0x0d && this.text.charCodeAt(this.pos) === 0x0a) {
      this.pos++;
      this.line++;
      this.column = 1;
    } else if (isLineBreak(c)) {
      this.line++;
      this.column = 1;
    } else if (!(c >= 0xdc00 && c <= 0xdfff)) {
      this.column++;
    }
  }

  private scan(): Token {
    const text = this.text;
    const doc: string[] = [];
    // Skip whitespace, line breaks and comments, collecting comment text.
    for (;;) {
      if (this.pos >= text.length) return this.token('eof', '', this.line, this.column, doc);
      const c = text.charCodeAt(this.pos);
      if (isBlank(c) || isLineBreak(c)) {
        this.advance();
      } else if (c === 0x23 /* # */) {
        const start = this.pos + 1;
        let end = start;
        while (end < text.length && !isLineBreak(text.charCodeAt(end))) end++;
        let body = text.slice(start, end);
        if (body.startsWith(' ')) body = body.slice(1);
        doc.push(body);
        while (this.pos < end) this.advance();
      } else {
        break;
      }
    }

    const line = this.line;
    const column = this.column;
    const c = text.charCodeAt(this.pos);
    const single = '(),:?'.indexOf(text[this.pos] ?? '');
    if (single >= 0) {
      this.advance();
      return this.token(text[this.pos - 1] as TokenKind, text[this.pos - 1] as string, line, column, doc);
    }
    if (c === 0x2d /* - */ && text.charCodeAt(this.pos + 1) === 0x3e /* > */) {
      this.advance();
      this.advance();
      return this.token('->', '->', line, column, doc);
    }
    if (c === 0x5b /* [ */) {
      if (text.startsWith('[]', this.pos)) {
        this.advance();
        this.advance();
        return this.token('[]', '[]', line, column, doc);
      }
      if (text.startsWith('[string]', this.pos)) {
        for (let i = 0; i < 8; i++) this.advance();
        return this.token('[string]', '[string]', line, column, doc);
      }
      this.fail("expected '[]' or '[string]' (map keys are always strings, written without spaces)", { line, column });
    }
    if (isWordStart(c)) {
      const start = this.pos;
      let end = start + 1;
      for (;;) {
        const d = text.charCodeAt(end);
        if (!isWordChar(d)) break;
        if (d === 0x2d && text.charCodeAt(end + 1) === 0x3e) break; // "->" ends a word
        end++;
      }
      while (this.pos < end) this.advance();
      return this.token('word', text.slice(start, end), line, column, doc);
    }
    const cp = text.codePointAt(this.pos) as number;
    const shown = cp < 0x20 || cp === 0x7f ? `U+${cp.toString(16).toUpperCase().padStart(4, '0')}` : `'${String.fromCodePoint(cp)}'`;
    return this.fail(`unexpected character ${shown}`, { line, column });
  }

  private token(kind: TokenKind, text: string, line: number, column: number, doc: string[]): Token {
    return { kind, text, line, column, doc };
  }
}
