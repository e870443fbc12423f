import { capText } from '../core/bounds.js';
import { STATUS_LIMITS } from '../core/status.js';
import type { RolloutRecord } from './ports.js';

/** A history record's texts bounded as the status bounds them: records stored before the recorder bounded them may not be. */
export function boundRecord(r: RolloutRecord): RolloutRecord {
  const error = r.error !== undefined ? capText(r.error, STATUS_LIMITS.messageChars) : undefined;
  const message = r.message !== undefined ? capText(r.message, STATUS_LIMITS.commitMessageChars) : undefined;
  const instances = r.instances && Object.fromEntries(Object.entries(r.instances).map(([name, h]) => [name, h.error !== undefined ? { ...h, error: capText(h.error, STATUS_LIMITS.messageChars) } : h]));
  return { ...r, ...(error !== undefined ? { error } : {}), ...(message !== undefined ? { message } : {}), ...(instances ? { instances } : {}) };
}
