// Page content for tests comes from the library's own generator (src/workload/page-content.ts).
export * from '../../src/workload/page-content.js';
