import { groupTest } from './group-test.js';

groupTest('bcd32');
