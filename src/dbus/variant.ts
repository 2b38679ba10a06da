/**
 * How D-Bus values look in JavaScript, and the Variant class.
 *
 *   y n q i u d  number          b  boolean          x t  bigint (numbers accepted when marshalling)
 *   s o g        string          h  number: a real file descriptor (the wire's index into the
 *                                   message's descriptor list is resolved on both sides)
 *   ay           Buffer (an Array of numbers or any Uint8Array is accepted when marshalling)
 *   a<T>         Array           a{KV}  Map (a plain object is accepted for string keys when marshalling)
 *   (…)          Array, one item per field                 v  Variant {signature, value}
 */

export class Variant<T = unknown> {
  constructor(
    /** The signature of the single complete type inside, e.g. 's' or 'a{sv}'. */
    readonly signature: string,
    readonly value: T,
  ) {}
}

/** A shorthand for `new Variant(signature, value)`. */
export function variant<T>(signature: string, value: T): Variant<T> {
  return new Variant(signature, value);
}
