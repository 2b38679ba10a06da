/** berth's version, reported by GetInfo and --version. Keep in step with package.json. */
export const VERSION = '0.1.0';
