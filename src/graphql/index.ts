export { graphqlWsUnits } from './graphql-ws-units.js';
