/** DI tokens for what the platform provides to every service module. */
export const CONFIG = Symbol('CONFIG');
export const LOGGER = Symbol('LOGGER');
