// Public surface of the activation store.
export { ActivationStore, StoreError, layerFromHook, type StoreOptions } from './store.ts';
export { SqlToolError, ALLOWED_STATEMENTS, ALLOWED_TABLE_FUNCTIONS, MAX_ROWS_CAP, type SqlErrorCode } from './readonly-sql.ts';
export { TABLES, TABLE_NAMES, describeSchema, type TableName, type TableDoc, type ColumnDoc, type TableSpec, type ColumnSpec } from './schema.ts';
export { newId, type IdPrefix } from './ids.ts';
export type * from './types.ts';
export { SCHEMA_VERSION, MIGRATIONS } from './migrations.ts';
export type { StoreEvent } from './recovery.ts';
