/** DI tokens of the billing service's own infrastructure. */
export const PG_POOL = Symbol('PG_POOL');
export const KAFKA = Symbol('KAFKA');
export const PRICE_TABLE = Symbol('PRICE_TABLE');
