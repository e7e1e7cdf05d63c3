/** `dimg watch`: the development loop (see loop.ts). */
export { WatchLoop, type WatchOptions } from './loop.js';
export { Debouncer, type ChangeBatch, type DebounceOptions } from './debounce.js';
export { FileWatcher, type FileWatcherOptions } from './watcher.js';
export { watchSetOf, isRelevant, relevance, imagesAffectedBy, type WatchSet, type TreeRoot } from './watch-set.js';
export { watchReporter, type WatchReporter } from './report.js';
export { WatchTreeMemo } from './tree-memo.js';
