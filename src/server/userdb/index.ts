// The user database of user-namespaced machines, as one import for its users (the tests): records, id maps, name rules, the range index.
export { UserDb, UserDbErrors } from './userdb.js';
export type { UserDbResult, UserDbErrorName, UserDbMachine, UserDbOptions, IdKind, IdRange, IdOwner, RangeOverlap } from './userdb.js';
export { parseIdMap, formatIdMap, readIdMaps, isIdMapError, IdMapParseError } from './idmap.js';
export type { IdMapLine, IdMapSource } from './idmap.js';
export { isValidUid, parseUid, isValidUserGroupNameStrict, isValidUserGroupNameRelaxed, CONTAINER_ID_MIN } from './names.js';
export { GID_NOBODY, NOLOGIN_SHELL, userNameFor, groupNameFor } from './records.js';
export type { ContainerUserRecord, ContainerGroupRecord } from './records.js';
export { RangeIndex } from './range-index.js';
export type { RangeEntry } from './range-index.js';
