/**
 * Finds an object key given twice in a JSON text. JSON.parse silently keeps the last value;
 * sd-varlink refuses such messages (a doubled header key drops the connection, a doubled
 * parameter is an InvalidParameter), so the server has to notice.
 *
 * The scan jumps from string to string with indexOf and looks only at the few structural
 * characters in between; keys live in one flat array (objects in calls have few keys), so a
 * typical call costs well under a microsecond. It expects text that JSON.parse accepted.
 */
export function findDuplicateKey(text: string): string[] | undefined {
  // Per open container: whether it is an object, where its keys start in `keys`, and the key
  // (in the enclosing object) it sits under.
  const isObject: boolean[] = [];
  const keyStart: number[] = [];
  const underKey: (string | undefined)[] = [];
  const keys: string[] = [];
  let expectKey = false;
  let lastKey: string | undefined;
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = text.indexOf('"', i + 1);
      while (j !== -1 && text.charCodeAt(j - 1) === 0x5c) {
        let slashes = 1;
        for (let k = j - 2; text.charCodeAt(k) === 0x5c; k--) slashes++;
        if (slashes % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      if (j === -1) return undefined;
      if (expectKey) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        for (let k = keyStart[depth - 1]!; k < keys.length; k++) {
          if (keys[k] === key) {
            const path: string[] = [];
            for (let d = 1; d < depth; d++) path.push(underKey[d]!);
            path.push(key);
            return path;
          }
        }
        keys.push(key);
        lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parentIsObject = depth > 0 && isObject[depth - 1];
      underKey[depth] = parentIsObject ? lastKey : depth > 0 ? underKey[depth - 1] : undefined;
      isObject[depth] = c === 0x7b;
      keyStart[depth] = keys.length;
      depth++;
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
      keys.length = keyStart[depth]!;
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = depth > 0 && isObject[depth - 1] === true;
    }
  }
  return undefined;
}
