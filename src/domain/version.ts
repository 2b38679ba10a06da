// berth's version, reported by berthd's GetInfo and every program's --version. Keep in step with package.json.
export const VERSION = '0.1.0';
