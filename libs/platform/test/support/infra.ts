/** Connection settings of the infrastructure `npm test` starts; a missing one fails loudly. */
export function infraEnv(name: 'DATABASE_URL' | 'REDIS_URL' | 'KAFKA_BROKERS'): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with npm test, or source .local/infra.env after bash infra/local/infra.sh start`);
  return value;
}
