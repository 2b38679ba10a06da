/**
 * Finds an object key given twice in a JSON text. JSON.parse silently keeps the last value;
 * sd-varlink refuses such messages (a doubled header key drops the connection, a doubled
 * parameter is an InvalidParameter), so the server has to notice.
 *
 * The scan jumps from string to string with indexOf and looks only at the few structural
 * characters in between. Keys live in one flat array, since objects in calls have few keys and a
 * typical call then costs well under a microsecond; an object that grows past SET_AFTER keys gets a
 * Set of its own, so a hostile message with a million keys in one object stays linear instead of
 * comparing every key with every other. It expects text that JSON.parse accepted.
 */
const SET_AFTER = 16;

export function findDuplicateKey(text: string): string[] | undefined {
  // Per open container: whether it is an object, where its keys start in `keys`, and the key
  // (in the enclosing object) it sits under.
  const isObject: boolean[] = [];
  const keyStart: number[] = [];
  const underKey: (string | undefined)[] = [];
  const keys: string[] = [];
  /** Per open object with many keys: all its keys so far. */
  const sets: (Set<string> | undefined)[] = [];
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
        const start = keyStart[depth - 1]!;
        let set = sets[depth - 1];
        if (!set && keys.length - start >= SET_AFTER) set = sets[depth - 1] = new Set(keys.slice(start));
        let seen = false;
        if (set) {
          seen = set.has(key);
          set.add(key);
        } else {
          for (let k = start; k < keys.length && !seen; k++) seen = keys[k] === key;
          keys.push(key);
        }
        if (seen) {
          const path: string[] = [];
          for (let d = 1; d < depth; d++) path.push(underKey[d]!);
          path.push(key);
          return path;
        }
        lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parentIsObject = depth > 0 && isObject[depth - 1];
      underKey[depth] = parentIsObject ? lastKey : depth > 0 ? underKey[depth - 1] : undefined;
      isObject[depth] = c === 0x7b;
      keyStart[depth] = keys.length;
      sets[depth] = undefined;
      depth++;
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
      keys.length = keyStart[depth]!;
      sets[depth] = undefined;
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = depth > 0 && isObject[depth - 1] === true;
    }
  }
  return undefined;
}
