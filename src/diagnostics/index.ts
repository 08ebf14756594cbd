export {
  CALLBACK_CHANNEL,
  type CallbackMessage,
  type CallbackName,
  CONNECTION_CHANNEL,
  CONNECTION_RELEASE_CHANNEL,
  type ConnectionMessage,
  type RollbackReason,
  SAVEPOINT_CHANNEL,
  type SavepointMessage,
  TRANSACTION_CHANNEL,
  type TransactionMessage,
  type TransactionMode,
  type TransactionOutcome,
  UNIT_CHANNEL,
  type UnitKind,
  type UnitMessage,
} from './channels.js';
export type { DbTarget } from './db-target.js';
