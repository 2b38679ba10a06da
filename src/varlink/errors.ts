/**
 * Errors that travel over the wire.
 *
 * A Varlink error is a fully qualified name plus an optional object of parameters. Handlers throw
 * subclasses generated from the IDL; the server turns them into error replies. The client raises
 * them back as the same generated class when it knows the interface, or as a plain VarlinkError.
 */
export class VarlinkError extends Error {
  readonly error: string;
  readonly parameters: Record<string, unknown>;

  constructor(error: string, parameters: Record<string, unknown> = {}) {
    const shown = Object.keys(parameters).length ? ` ${JSON.stringify(parameters)}` : '';
    // These are answers, not faults: no stack trace. Capturing one was most of the cost of a
    // NoRecordFound reply, the answer to every host user that NSS looks up through berthd.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${error}${shown}`);
    Error.stackTraceLimit = limit;
    this.name = 'VarlinkError';
    this.error = error;
    this.parameters = parameters;
  }
}

/** Names of the errors of org.varlink.service, which every Varlink server may send. */
export const ServiceErrors = {
  InterfaceNotFound: 'org.varlink.service.InterfaceNotFound',
  MethodNotFound: 'org.varlink.service.MethodNotFound',
  MethodNotImplemented: 'org.varlink.service.MethodNotImplemented',
  InvalidParameter: 'org.varlink.service.InvalidParameter',
  PermissionDenied: 'org.varlink.service.PermissionDenied',
  ExpectedMore: 'org.varlink.service.ExpectedMore',
} as const;

export class InterfaceNotFoundError extends VarlinkError {
  constructor(iface: string) {
    super(ServiceErrors.InterfaceNotFound, { interface: iface });
  }
}

export class MethodNotFoundError extends VarlinkError {
  constructor(method: string) {
    super(ServiceErrors.MethodNotFound, { method });
  }
}

export class InvalidParameterError extends VarlinkError {
  constructor(parameter: string) {
    super(ServiceErrors.InvalidParameter, { parameter });
  }
}

export class PermissionDeniedError extends VarlinkError {
  constructor() {
    super(ServiceErrors.PermissionDenied);
  }
}

export class ExpectedMoreError extends VarlinkError {
  constructor() {
    super(ServiceErrors.ExpectedMore);
  }
}

/** `io.systemd.System`: a Linux errno, the way sd-varlink services report generic failures. */
export class SystemError extends VarlinkError {
  constructor(errno: number) {
    super('io.systemd.System', { errno });
  }
}

/**
 * Local failures of a client call, named as sd-varlink names them. They never cross the wire.
 */
export class DisconnectedError extends VarlinkError {
  constructor() {
    super('io.systemd.Disconnected');
  }
}

export class TimedOutError extends VarlinkError {
  constructor() {
    super('io.systemd.TimedOut');
  }
}

export class ProtocolError extends VarlinkError {
  constructor(readonly detail: string) {
    super('io.systemd.Protocol');
    this.message = `io.systemd.Protocol: ${detail}`;
  }
}
