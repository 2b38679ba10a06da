// No methods: nothing to validate.
export {};
