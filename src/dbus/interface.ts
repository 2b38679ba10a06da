/**
 * How an exported interface is described: methods with their in/out signatures and handler,
 * properties with type, getter, optional setter and change-signal behaviour, signals with their
 * signature. The object server validates calls against these before a handler runs, and builds
 * the introspection XML from them.
 */
import type { Connection } from './connection.js';
import type { Credentials } from './bus.js';
import type { Message } from './message.js';

/** What a handler knows about the call it answers. */
export interface CallContext {
  connection: Connection;
  /** The object path called (for a subtree: which object). */
  path: string;
  interface: string;
  member: string;
  /** The sender's unique name, as the bus stamped it. */
  sender: string;
  /** MessageFlags bits of the call (e.g. AllowInteractiveAuthorization). */
  flags: number;
  message: Message;
  /** The broker's credentials of the sender (asked once per sender while it is on the bus; never a descriptor). */
  credentials(): Promise<Credentials>;
  /**
   * Takes ownership of the descriptors that came with the call. Without this they are closed once the
   * handler has finished.
   */
  takeFds(): number[];
}

export type MethodHandler = (args: any[], ctx: CallContext) => unknown[] | void | Promise<unknown[] | void>;

export interface MethodSpec {
  /** Signature of the arguments (default ''). A call with any other body gets InvalidArgs. */
  in?: string;
  /** Signature of the reply (default ''). The handler returns one value per complete type. */
  out?: string;
  /** Argument names for introspection. */
  inNames?: string[];
  outNames?: string[];
  annotations?: Record<string, string>;
  handler: MethodHandler;
}

/** sd-bus's values of org.freedesktop.DBus.Property.EmitsChangedSignal. */
export type EmitsChange = 'true' | 'invalidates' | 'const' | 'false';

export interface PropertySpec {
  /** The property's type (a single complete type). */
  type: string;
  get: (ctx: CallContext) => unknown | Promise<unknown>;
  /** Without a setter the property is read-only (Set gets PropertyReadOnly). */
  set?: (value: any, ctx: CallContext) => void | Promise<void>;
  /** Default 'true': PropertiesChanged carries the new value. */
  emitsChange?: EmitsChange;
  annotations?: Record<string, string>;
}

export interface SignalSpec {
  signature?: string;
  names?: string[];
  annotations?: Record<string, string>;
}

export interface InterfaceSpec {
  name: string;
  methods?: Record<string, MethodSpec>;
  properties?: Record<string, PropertySpec>;
  signals?: Record<string, SignalSpec>;
  annotations?: Record<string, string>;
}
