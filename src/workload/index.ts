// The demo guest: a workload on its own thread that dirties guest memory while it migrates.
export { DEFAULT_DIRTY_PAGES_PER_SECOND, DEFAULT_ZERO_FRACTION, startGuest, type Guest, type GuestMode, type GuestOptions } from './guest.js';
