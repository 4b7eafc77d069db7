import { groupTest } from './group-check.js';

groupTest('x87');
